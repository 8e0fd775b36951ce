"""Fields of the hitl API that take exactly what the OpenAPI schema shows, no more.

DRF's fields are lenient where the schema is not: a BooleanField takes ``0`` or ``"yes"``, an
IntegerField ``"12"``, a CharField ``12``; and a CharField refuses a NUL character or a text of
spaces that its schema (a string, at least one character) allows. ``JSONIn`` refuses the first
(a JSON body says true, false, numbers and texts as such); the validators and the filter here
state the second in the schema (a pattern). A request is then refused exactly when the schema
says it is invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.serializers import TEXT_PATTERN, StrictIn, refused_fields


def _type_errors(serializer: serializers.Serializer[Any]) -> dict[str, list[str]]:
    data = getattr(serializer, "initial_data", None)
    if not isinstance(data, Mapping):
        return {}
    errors: dict[str, list[str]] = {}
    for name, field in serializer.fields.items():
        value = data.get(name)
        if value is None or field.read_only:
            continue  # absent, or null (the field says whether it takes it), or refused as read-only
        if isinstance(field, serializers.BooleanField) and not isinstance(value, bool):
            errors[name] = ["must be true or false"]
        elif isinstance(field, serializers.IntegerField) and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            errors[name] = ["must be a number"]
        elif isinstance(field, serializers.CharField) and not isinstance(value, str):
            errors[name] = ["must be a string"]
    return errors


class JSONIn(StrictIn):
    """Refuses unknown and read-only fields, and values not of the field's JSON type: a boolean
    is true or false (not 0 or "yes"), a number is not a string, a text is not a number (400
    naming each field)."""

    def to_internal_value(self, data: Any) -> Any:
        errors = {**refused_fields(self), **_type_errors(self)}
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


class NulFree:
    """Mixed into a field of JSON values: a text anywhere in the value with a NUL character is
    refused (PostgreSQL's jsonb cannot store one)."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)  # type: ignore[misc]
        if _holds_nul(value):
            raise serializers.ValidationError("texts must not hold NUL characters")
        return value


class JSONValueField(NulFree, serializers.JSONField):
    """Any JSON value; its schema says which (extend_schema_field on a subclass)."""


class JSONDictField(NulFree, serializers.DictField):
    """A JSON object."""


@extend_schema_field({"type": "string", "pattern": TEXT_PATTERN})
class TextFilter(filters.CharFilter):
    """A text filter; a value with a NUL character is a 400 (no stored text holds one)."""
