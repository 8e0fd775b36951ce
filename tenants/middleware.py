from __future__ import annotations

from django.db import DatabaseError, ProgrammingError
from django.http import HttpRequest, HttpResponse
from django_tenants.middleware.main import TenantMainMiddleware

from config.errors import database_unavailable, database_unavailable_response, error_response
from tenants.models import Domain, Tenant, TenantStatus
from tenants.selectors import tenant_cache_clear, tenant_for_host

# What PostgreSQL answers once a tenant's schema is gone: its tables are not on the search path.
_SCHEMA_GONE = {"42P01", "3F000"}  # undefined_table, invalid_schema_name


class TenantMiddleware(TenantMainMiddleware):
    """Resolves the tenant from the Host header (unknown host: 404) and refuses suspended
    tenants with 403 before any view runs. When the host's tenant is not remembered
    (tenants.selectors.tenant_for_host), the lookup is the request's first query, so a
    database outage surfaces here: 503 with ``Retry-After`` rather than a server error.

    A host remembered by this process may name a tenant another process has just deleted:
    its schema is gone, and the first query of its tables fails. That request forgets every
    remembered host, and answers 404 if the host is indeed no tenant's any more."""

    def get_tenant(self, domain_model: type[Domain], hostname: str) -> Tenant:
        # Unknown hosts raise domain_model.DoesNotExist, as the base class expects.
        return tenant_for_host(hostname=hostname)

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

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ProgrammingError):
            return None
        if getattr(exception.__cause__, "sqlstate", None) not in _SCHEMA_GONE:
            return None
        tenant_cache_clear()
        try:
            tenant_for_host(hostname=self.hostname_from_request(request))
        except Domain.DoesNotExist:
            return error_response(request, status=404, code="not_found", detail="No tenant serves this host.")
        except DatabaseError:
            return None
        return None
