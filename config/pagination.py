"""The API's page-number pagination, with the count and the page read in one statement.

DRF's paginator asks the database twice per page: ``SELECT COUNT(*)`` for the total, then the
page's rows. Here the page's query carries the count as an uncorrelated scalar subquery (one
column, ``(SELECT COUNT(id) FROM … WHERE <the same filters>)``, which PostgreSQL evaluates
once), so a list costs one round trip. The answers are DRF's own: same pages, same count, same
``next``/``previous`` links, same 404 for a page past the end.

Two cases still count separately, as DRF does: a page with no rows past the first (the count
tells whether the page number is invalid), and object lists the subquery would miscount or
cannot hold (DISTINCT, GROUP BY, set operations, sliced or ``values()`` querysets, plain lists).
"""

from __future__ import annotations

from typing import Any, TypeGuard

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import BigIntegerField, F, Func, QuerySet, Subquery
from django.db.models.query import ModelIterable
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request

# The annotation that carries the total; taken off each row before anyone sees it.
_TOTAL = "_vigil_page_total"
# The largest row offset PostgreSQL takes (bigint); a page past it is past the end of any list.
_MAX_OFFSET = 2**63 - 1


def _countable(object_list: Any) -> TypeGuard[QuerySet[Any]]:
    if not isinstance(object_list, QuerySet) or object_list._iterable_class is not ModelIterable:
        return False
    query = object_list.query
    return not (query.distinct or query.group_by is not None or query.combinator or query.is_sliced)


class CountingPaginator(Paginator):
    """Django's paginator whose ``page`` learns ``count`` from the page's own query."""

    def page(self, number: Any) -> Page:
        queryset = self.object_list
        if self.orphans or not self.allow_empty_first_page or not _countable(queryset):
            return super().page(number)
        number = self._whole(number)
        bottom = (number - 1) * self.per_page
        if bottom + self.per_page > _MAX_OFFSET:
            self.validate_number(number)  # counts, and refuses the page past the end
        total = Subquery(queryset.order_by().values(n=Func(F("pk"), function="COUNT", output_field=BigIntegerField())))
        rows = list(queryset.annotate(**{_TOTAL: total})[bottom : bottom + self.per_page])
        if rows:
            self.__dict__["count"] = getattr(rows[0], _TOTAL)  # Paginator.count is a cached_property
            for row in rows:
                del row.__dict__[_TOTAL]
        elif number == 1:
            self.__dict__["count"] = 0
        else:
            self.validate_number(number)  # counts, and refuses the page past the end
        return Page(rows, number, self)

    def _whole(self, number: Any) -> int:
        """``number`` as a page number, refused as Paginator.validate_number refuses it."""
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=`` is a whole number from 1 (the schema says so): anything else, empty included,
    is a 400 naming the parameter; a page past the end (a number of 19 digits or more
    included) is DRF's 404."""

    django_paginator_class = CountingPaginator

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw in self.last_page_strings:
            return super().get_page_number(request, paginator)
        digits = raw.lstrip("0") if raw.isascii() and raw.isdigit() else ""
        if not digits:
            raise ValidationError({self.page_query_param: ["must be a whole number from 1"]})
        if len(digits) > 18:  # past the end of any list (and int() refuses over 4,300 digits)
            raise NotFound(self.invalid_page_message)
        return digits
