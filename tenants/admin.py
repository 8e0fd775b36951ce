"""The operators' admin, served on the public domain only (config/urls_public.py)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.errors import VigilError
from governance.actors import Actor
from governance.admin import register_governance_admin
from governance.history_admin import GovernedHistoryAdmin
from tenants import connections, services, usage
from tenants.models import Domain, LLMConnection, ModelPrice, Tenant, TenantStatus, UsageDay
from tenants.selectors import tenant_limits, tenant_list
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


class TenantAdmin(GovernedHistoryAdmin):
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
        services.tenant_update(
            schema_name=obj.schema_name,
            name=obj.name,
            tier=obj.tier,
            limit_overrides=obj.limit_overrides,
            actor=Actor.for_user(request.user),
        )

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


class LLMConnectionForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500, assume_scheme="https", help_text=LLMConnection._meta.get_field("base_url").help_text
    )

    class Meta:
        model = LLMConnection
        fields = [
            "name",
            "base_url",
            "api_key_env",
            "allowed_models",
            "timeout_seconds",
            "available_to_all",
            "tenants",
            "enabled",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "tenants" in self.fields:
            self.fields["tenants"].queryset = tenant_list()  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        if not self.instance.pk and not connections.NAME_RE.match(data.get("name") or ""):
            self.add_error("name", "lowercase letters, digits and dashes, at most 50")
        try:
            connections.llm_connection_clean(
                base_url=data.get("base_url"),
                api_key_env=data.get("api_key_env"),
                allowed_models=data.get("allowed_models"),
                timeout_seconds=data.get("timeout_seconds"),
            )
        except connections.LLMConnectionInvalid as exc:
            for field, message in exc.extra.get("fields", {}).items():
                self.add_error(field if field in self.fields else None, message)
        return data


class LLMConnectionAdmin(GovernedHistoryAdmin):
    """Every change goes through tenants.connections, so it is validated and audited like the
    command's."""

    form = LLMConnectionForm
    list_display = ("name", "base_url", "api_key_env", "models", "timeout_seconds", "availability", "enabled")
    list_filter = ("enabled", "available_to_all")
    search_fields = ("name", "base_url")
    filter_horizontal = ("tenants",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # Agents refer to a connection by name: renaming it would cut them off silently.
        return ("name",) if obj is not None else ()

    @admin.display(description="Models")
    def models(self, obj: LLMConnection) -> str:
        return ", ".join(obj.allowed_models)

    @admin.display(description="Available to")
    def availability(self, obj: LLMConnection) -> str:
        if obj.available_to_all:
            return "all tenants"
        return ", ".join(t.schema_name for t in obj.tenants.all()) or "no tenant"

    def save_model(self, request: HttpRequest, obj: LLMConnection, form: Any, change: bool) -> None:
        data = form.cleaned_data
        values = {
            "base_url": data["base_url"],
            "api_key_env": data["api_key_env"],
            "allowed_models": data["allowed_models"],
            "timeout_seconds": data["timeout_seconds"],
            "available_to_all": data["available_to_all"],
            "enabled": data["enabled"],
            "tenants": [t.schema_name for t in data["tenants"]],
        }
        actor = Actor.for_user(request.user)
        if change:
            connections.llm_connection_update(name=obj.name, actor=actor, **values)
            return
        created = connections.llm_connection_create(name=data["name"], actor=actor, **values)
        obj.pk = created.pk
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the service has set the granted tenants; form.save_m2m() would write them unaudited

    def delete_model(self, request: HttpRequest, obj: LLMConnection) -> None:
        connections.llm_connection_delete(name=obj.name, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[LLMConnection]) -> None:
        for conn in queryset:
            connections.llm_connection_delete(name=conn.name, actor=Actor.for_user(request.user))


class ModelPriceAdmin(admin.ModelAdmin):
    """The price table the usage's estimated cost comes from; every change goes through
    tenants.usage, audited in the public chain."""

    list_display = ("model", "input_per_million", "output_per_million", "updated_at")
    search_fields = ("model",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("model",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: ModelPrice, form: Any, change: bool) -> None:
        saved = usage.price_set(
            model=obj.model,
            input_per_million=obj.input_per_million,
            output_per_million=obj.output_per_million,
            actor=Actor.for_user(request.user),
        )
        obj.pk = saved.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: ModelPrice) -> None:
        usage.price_delete(model=obj.model, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelPrice]) -> None:
        for price in queryset:
            usage.price_delete(model=price.model, actor=Actor.for_user(request.user))


class UsageDayAdmin(admin.ModelAdmin):
    """Usage across tenants, per day (UTC) and model: one query over the public table."""

    list_display = ("day", "tenant", "model", "runs", "steps", "tokens_in", "tokens_out", "cost_usd", "approvals")
    list_filter = ("model", "tenant__tier", "tenant")
    search_fields = ("tenant__name", "tenant__schema_name", "model")
    date_hierarchy = "day"
    list_select_related = ("tenant",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # counted by the work itself (tenants.usage)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


operator_site.register(Tenant, TenantAdmin)
operator_site.register(ModelPrice, ModelPriceAdmin)
operator_site.register(UsageDay, UsageDayAdmin)
operator_site.register(LLMConnection, LLMConnectionAdmin)
register_governance_admin(operator_site)
