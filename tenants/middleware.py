from __future__ import annotations

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django_tenants.middleware.main import TenantMainMiddleware

from config.errors import database_unavailable, database_unavailable_response, error_response
from tenants.models import TenantStatus


class TenantMiddleware(TenantMainMiddleware):
    """Resolves the tenant from the Host header (unknown host: 404) and refuses suspended
    tenants with 403 before any view runs. The lookup is the first query of a request, so a
    database outage surfaces here: 503 with ``Retry-After`` rather than a server error."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        try:
            response = super().process_request(request)
        except DatabaseError as exc:
            if not database_unavailable(exc):
                raise
            return database_unavailable_response(request, exc)
        if response is not None:
            return response
        tenant = getattr(request, "tenant", None)
        if tenant is not None and tenant.status == TenantStatus.SUSPENDED:
            return error_response(
                request,
                status=403,
                code="tenant_suspended",
                detail="This tenant is suspended. Contact your Vigil operator.",
            )
        return None
