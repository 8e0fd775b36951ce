"""A tenant's own usage and limits: ``GET /api/v1/usage`` and the admin's Usage page. The
counting is tenants.usage's; what each limit allows, agents.limits'."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api import CapabilityPermission
from agents.limits import current_limits, in_flight
from agents.models import Agent, AgentStatus, Task, TenantUsage
from agents.models import TaskState as S
from governance.access import Capability
from governance.admin import AccessAdminMixin
from tenants.api_serializers import UsageCountsOut, UsageRowOut
from tenants.usage import UsagePeriodInvalid, runs_on, tokens_in_month, usage_day, usage_period, usage_report


def limits_used() -> list[dict[str, Any]]:
    """Each limit of the current tenant with its maximum and what is used now (None: not
    counted here; requests per minute are the API throttle's)."""
    tenant, limits = current_limits()
    today = usage_day()
    used: dict[str, int | None] = {
        "max_agents": Agent.objects.filter(status=AgentStatus.ENABLED).count(),
        "runs_per_day": runs_on(tenant_id=tenant.pk, day=today),
        "tokens_per_month": tokens_in_month(tenant_id=tenant.pk, day=today),
        "requests_per_minute": None,
        "max_pending_approvals": Task.objects.filter(state=S.AWAITING_APPROVAL).count(),
        "max_concurrent_tasks": in_flight(up_to=limits.max_concurrent_tasks + 1),
    }
    lines = [{"limit": name, "max": maximum, "used": used.get(name)} for name, maximum in limits.as_dict().items()]
    for line in lines:
        if line["limit"] == "max_concurrent_tasks":
            line["queued"] = Task.objects.filter(state=S.QUEUED).count()
    return lines


def tenant_usage(*, day_from: str | None, day_to: str | None) -> dict[str, Any]:
    tenant, _ = current_limits()
    start, end = usage_period(day_from=day_from, day_to=day_to)
    report = usage_report(tenants=[tenant], day_from=start, day_to=end)
    for row in report["rows"]:
        row.pop("tenant")
    return {**report, "limits": limits_used()}


def tokens_this_month() -> int:
    """The dashboard's counter of tokens_per_month (governance.dashboard)."""
    tenant, _ = current_limits()
    return tokens_in_month(tenant_id=tenant.pk, day=usage_day())


class LimitUsedOut(serializers.Serializer):
    limit = serializers.CharField()
    max = serializers.IntegerField()
    used = serializers.IntegerField(allow_null=True, help_text="null: not counted here (the API throttle's)")
    queued = serializers.IntegerField(required=False, help_text="max_concurrent_tasks only: tasks waiting")


class UsageOut(serializers.Serializer):
    # "from" is a keyword: the field is declared under another name, then renamed.
    from_ = serializers.DateField()
    to = serializers.DateField()
    rows = UsageRowOut(many=True)
    totals = UsageCountsOut()
    limits = LimitUsedOut(many=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


# The one date format the API takes (date.fromisoformat alone also reads 20250401 or 2025-W14);
# a parameter given empty is refused too: leave it out for the default.
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class UsageApi(APIView):
    """The tenant's usage per day (UTC) and model in a period, its totals, and each limit with
    what is used of it now."""

    permission_classes = [CapabilityPermission]
    needs = {"get": Capability.VIEW}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "from", OpenApiTypes.DATE, description="first day, YYYY-MM-DD (default: the first of this month)"
            ),
            OpenApiParameter("to", OpenApiTypes.DATE, description="last day, YYYY-MM-DD (default: today, UTC)"),
        ],
        responses={200: UsageOut},
    )
    def get(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"from", "to"})
        if unknown:
            raise UsagePeriodInvalid(f"unknown parameter {unknown[0]!r}; known: from, to", field=unknown[0])
        period = {name: request.query_params.get(name) for name in ("from", "to")}
        for name, value in period.items():
            if value is not None and not ISO_DAY.fullmatch(value):
                raise UsagePeriodInvalid(f"{name!r} must be a date as YYYY-MM-DD, got {value[:40]!r}", field=name)
        return Response(tenant_usage(day_from=period["from"], day_to=period["to"]))


class TenantUsageAdmin(AccessAdminMixin, admin.ModelAdmin):
    """Usage, read only: the tenant's rows of the period chosen, under its limits and what is
    used of each now."""

    list_display = ("day", "model", "runs", "steps", "tokens_in", "tokens_out", "cost_usd", "approvals")
    list_filter = ("model",)
    date_hierarchy = "day"
    change_list_template = "admin/agents/tenantusage/change_list.html"
    actions = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        tenant, _ = current_limits()
        return queryset.filter(tenant=tenant)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {**(extra_context or {}), "limits_used": limits_used()}
        return super().changelist_view(request, context)


admin.site.register(TenantUsage, TenantUsageAdmin)
