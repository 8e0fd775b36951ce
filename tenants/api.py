"""The operators' tenant API, on the public domain only (config/urls_public.py).

Who is an operator is decided as the operators' admin decides it: an active staff user of the
public schema. Tokens are looked up in the schema of the host they are sent to
(governance.tokens), so a tenant user's token is unknown here (401) and an operator's token
works only here. Every write goes through the services the commands and the operators' admin
use (tenants.services), which validate, write in one transaction and audit in the public chain.
"""

from __future__ import annotations

import re
from typing import Any

from django_tenants.utils import get_public_schema_name
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from config.connection import connection
from config.errors import VigilError
from governance.actors import Actor
from governance.api_fields import BodyRequired
from tenants import services
from tenants.api_serializers import LimitsIn, TenantCreatedOut, TenantCreateIn, TenantOut, TenantUsageOut
from tenants.exceptions import TenantNotFound
from tenants.models import Tenant
from tenants.selectors import tenant_list
from tenants.usage import UsagePeriodInvalid, usage_period, usage_report


class UnknownParameter(VigilError):
    code = "invalid"
    status = 400


# A day of the usage period: YYYY-MM-DD, or empty for the default.
DAY = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "maxLength": 0}]}
DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class IsOperator(BasePermission):
    message = "only an operator (a staff user of the public domain) may manage tenants"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            connection.schema_name == get_public_schema_name()
            and user
            and user.is_authenticated
            and user.is_active
            and user.is_staff
        )


class OperatorView(GenericAPIView[Tenant]):
    permission_classes = [IsOperator]
    serializer_class = TenantOut
    # Tenants are listed by name; no ordering or filter parameters.
    filter_backends: list[Any] = []
    # A short list: DRF's paginator, which counts first (any page past the end is a 404).
    pagination_class = PageNumberPagination

    def get_queryset(self) -> Any:
        return tenant_list().order_by("name", "pk")

    def tenant(self, pk: int) -> Tenant:
        tenant = self.get_queryset().filter(pk=pk).first()
        if tenant is None:
            raise TenantNotFound(f"no tenant {pk}", tenant=pk)
        return tenant

    def answer(self, tenant: Tenant, code: int = status.HTTP_200_OK) -> Response:
        # Read afresh: the services change the row under a lock of their own.
        return Response(TenantOut(self.tenant(tenant.pk)).data, status=code)

    def actor(self) -> Actor:
        return Actor.for_user(self.request.user)


class TenantListApi(OperatorView):
    """Customer tenants (neither the public schema nor warm-pool spares), by name; POST
    provisions one, as ``manage.py provision_tenant`` does."""

    @extend_schema(responses={200: TenantOut(many=True)})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(TenantOut(page, many=True).data)

    @extend_schema(request=TenantCreateIn, responses={201: TenantCreatedOut})
    def post(self, request: Request) -> Response:
        body = TenantCreateIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        provision = services.provision_request_build(
            name=data["name"],
            domain=data["domain"],
            tier=data["tier"],
            admin_email=data["admin_email"],
            admin_password=data.get("admin_password"),
            schema_name=data.get("schema_name"),
        )
        result = services.tenant_provision(request=provision, actor=self.actor())
        connection.set_schema_to_public()
        created = {
            "tenant": TenantOut(self.tenant(result.tenant.pk)).data,
            "admin_username": result.admin_username,
            "invitation_url": result.invitation_url,
            "from_pool": result.from_pool,
        }
        return Response(created, status=status.HTTP_201_CREATED)


class TenantDetailApi(OperatorView):
    def get(self, request: Request, pk: int) -> Response:
        return Response(TenantOut(self.tenant(pk)).data)


class TenantUsageApi(OperatorView):
    """The tenant's usage per day (UTC) and model in a period, and its totals (tenants.usage)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("from", DAY, description="first day, YYYY-MM-DD (default: the first of this month)"),
            OpenApiParameter("to", DAY, description="last day, YYYY-MM-DD (default: today, UTC)"),
        ],
        responses={200: TenantUsageOut},
    )
    def get(self, request: Request, pk: int) -> Response:
        unknown = sorted(set(request.query_params) - {"from", "to"})
        if unknown:
            raise UnknownParameter(f"unknown parameter {unknown[0]!r}; known: from, to", field=unknown[0])
        days = {name: request.query_params.get(name) or None for name in ("from", "to")}
        for name, value in days.items():
            # date.fromisoformat takes other ISO forms (20260101, 2026-W01-1); the API does not.
            if value is not None and not DAY_RE.fullmatch(value):
                raise UsagePeriodInvalid(f"{name!r} must be a date as YYYY-MM-DD, got {value[:40]!r}", field=name)
        tenant = self.tenant(pk)
        start, end = usage_period(day_from=days["from"], day_to=days["to"])
        report = usage_report(tenants=[tenant], day_from=start, day_to=end)
        for row in report["rows"]:
            row.pop("tenant")
        return Response({"tenant": tenant.pk, "schema_name": tenant.schema_name, **report})


class TenantSuspendApi(OperatorView):
    """Suspend an active tenant: its domain answers 403, its agents stop at the next step."""

    @extend_schema(request=None, responses={200: TenantOut})
    def post(self, request: Request, pk: int) -> Response:
        tenant = services.tenant_suspend(schema_name=self.tenant(pk).schema_name, actor=self.actor())
        return self.answer(tenant)


class TenantActivateApi(OperatorView):
    """Resume a suspended tenant; its held tasks are picked up again."""

    @extend_schema(request=None, responses={200: TenantOut})
    def post(self, request: Request, pk: int) -> Response:
        tenant = services.tenant_resume(schema_name=self.tenant(pk).schema_name, actor=self.actor())
        return self.answer(tenant)


class TenantLimitsApi(OperatorView):
    """Override some of the tenant's tier limits (a number), or drop an override (null)."""

    schema = BodyRequired()

    @extend_schema(request=LimitsIn, responses={200: TenantOut})
    def patch(self, request: Request, pk: int) -> Response:
        body = LimitsIn(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = self.tenant(pk)
        overrides = dict(tenant.limit_overrides or {})
        for name, value in body.validated_data.items():
            if value is None:
                overrides.pop(name, None)
            else:
                overrides[name] = value
        services.tenant_update(
            schema_name=tenant.schema_name,
            name=tenant.name,
            tier=tenant.tier,
            limit_overrides=overrides,
            actor=self.actor(),
        )
        return self.answer(tenant)
