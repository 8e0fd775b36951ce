"""The operators' admin, served on the public domain only (config/urls_public.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.errors import VigilError
from governance.actors import Actor
from governance.admin import register_governance_admin
from tenants import services
from tenants.models import Domain, Tenant, TenantStatus
from tenants.selectors import tenant_limits
from tenants.tiers import validate_overrides


class OperatorAdminSite(admin.AdminSite):
    site_header = "Vigil operators"
    site_title = "Vigil operators"
    index_title = "Tenants"


operator_site = OperatorAdminSite(name="operator_admin")


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ("domain", "is_primary")
    readonly_fields = ("domain", "is_primary")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "schema_name", "tier", "status", "primary_domain", "created_at")
    list_filter = ("tier", "status")
    search_fields = ("name", "schema_name", "domains__domain")
    readonly_fields = ("schema_name", "status", "created_at", "effective_limits")
    fields = ("name", "schema_name", "tier", "status", "limit_overrides", "effective_limits", "created_at")
    inlines = [DomainInline]
    actions = ["suspend_selected", "resume_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).exclude(status=TenantStatus.SPARE).exclude(schema_name="public")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # provisioning is `manage.py provision_tenant`: it needs a schema

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deletion needs `manage.py delete_tenant --confirm <schema>`

    @admin.display(description="Domain")
    def primary_domain(self, obj: Tenant) -> str:
        domain = next((d for d in obj.domains.all() if d.is_primary), None)
        return domain.domain if domain else "-"

    @admin.display(description="Effective limits")
    def effective_limits(self, obj: Tenant) -> str:
        try:
            validate_overrides(obj.limit_overrides)
        except ValueError:
            # A refused edit re-renders the form with the rejected overrides still on the
            # instance; the error is shown on that field, so show no limits rather than fail.
            return "-"
        return ", ".join(f"{k}={v:,}" for k, v in tenant_limits(tenant=obj).as_dict().items())

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        services.tenant_update(schema_name=obj.schema_name, name=obj.name, tier=obj.tier,
                               limit_overrides=obj.limit_overrides, actor=Actor.for_user(request.user))

    def _lifecycle(self, request: HttpRequest, queryset: QuerySet[Tenant], action: Any, done: str) -> None:
        for tenant in queryset:
            try:
                action(schema_name=tenant.schema_name, actor=Actor.for_user(request.user))
                self.message_user(request, f"{tenant.name}: {done}", messages.SUCCESS)
            except VigilError as exc:
                self.message_user(request, f"{tenant.name}: {exc}", messages.ERROR)

    @admin.action(description="Suspend selected tenants")
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._lifecycle(request, queryset, services.tenant_suspend, "suspended")

    @admin.action(description="Resume selected tenants")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._lifecycle(request, queryset, services.tenant_resume, "resumed")


operator_site.register(Tenant, TenantAdmin)
register_governance_admin(operator_site)
