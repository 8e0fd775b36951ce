from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django_tenants.middleware.main import TenantMainMiddleware

from tenants.models import TenantStatus


class TenantMiddleware(TenantMainMiddleware):
    """Resolves the tenant from the Host header (unknown host: 404) and refuses suspended
    tenants with 403 before any view runs."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        response = super().process_request(request)
        if response is not None:
            return response
        tenant = getattr(request, "tenant", None)
        if tenant is not None and tenant.status == TenantStatus.SUSPENDED:
            return HttpResponseForbidden("This tenant is suspended. Contact your Vigil operator.",
                                         content_type="text/plain")
        return None
