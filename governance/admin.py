from __future__ import annotations

import json
from typing import Any

from django import forms
from django.apps import apps as global_apps
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from rest_framework.authtoken.admin import TokenAdmin  # noqa: F401  (registers TokenProxy, unregistered below)
from rest_framework.authtoken.models import TokenProxy

from governance import access, roles
from governance.access import ROLE_CAPABILITIES, ROLE_CODES, Capability, Role
from governance.actors import Actor
from governance.admin_tokens import ApiTokenAdmin
from governance.audit_query import audit_filter_parse, audit_visible
from governance.lockout import LockoutAuthenticationForm
from governance.models import ApiToken, AuditEvent, SsoIdentity, SsoProvider
from governance.services import audit_record
from governance.sso_admin import SsoIdentityAdmin, SsoProviderAdmin


class AccessAdminMixin:
    """``has_*_permission`` answered by governance.access: each kind of admin permission names
    the capability it needs (None: nobody), and lists show only objects in the user's reach.
    Model admins and inlines of the tenant admin put it first in their bases."""

    access_view: Capability | None = Capability.VIEW
    access_add: Capability | None = None
    access_change: Capability | None = None
    access_delete: Capability | None = None

    def _may(self, request: HttpRequest, capability: Capability | None, obj: Any = None) -> bool:
        return capability is not None and access.user_may(request.user, capability, obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may(request, self.access_view)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, self.access_view, obj) or self.has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, self.access_add)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, self.access_change, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, self.access_delete, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return access.scoped(request.user, self.access_view, queryset) if self.access_view else queryset.none()

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        # Django looks the object up before it checks the permission, which would answer a
        # refused user "does not exist" rather than 403.
        if not self.has_view_permission(request):
            raise PermissionDenied
        return super().history_view(request, object_id, extra_context)  # type: ignore[misc]


class AuditedAdminMixin:
    """Every add, change and delete made through the admin lands in the audit chain, in the
    same transaction as the change (the admin wraps its writes in one)."""

    def _audit(self, request: HttpRequest, obj: Model, verb: str, message: Any) -> None:
        audit_record(
            actor=Actor.for_user(request.user),
            verb=verb,
            target_type=obj._meta.label_lower,
            target_id=str(obj.pk),
            data={
                "object": str(obj)[:200],
                "change": message
                if isinstance(message, list) and len(json.dumps(message)) < 2000
                else str(message)[:2000],
            },
        )

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(request, obj, "admin.added", message)
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(request, obj, "admin.changed", message)
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            self._audit(request, obj, "admin.deleted", "")
        return super().log_deletions(request, queryset)  # type: ignore[misc]


AGENT_SCOPE_FIELDS = {
    "view_agents": access.VIEW_AGENT,
    "manage_agents": access.MANAGE_AGENT,
    "review_agents": access.REVIEW_AGENT,
}


class MemberChangeForm(UserChangeForm):
    """A tenant user as its admin may change it: no superuser, staff or permission flags (roles
    decide), roles by their fixed codes, and the agents the user is limited to."""

    roles = forms.MultipleChoiceField(
        label="Roles",
        choices=[(code, code) for code in ROLE_CODES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="What this user may do: "
        + "; ".join(f"{role}: {', '.join(sorted(ROLE_CAPABILITIES[role]))}" for role in Role)
        + ". No role: no access.",
    )
    # Their agents are set in __init__: governance names the agents app's model only by label.
    view_agents: forms.ModelMultipleChoiceField[Any] = forms.ModelMultipleChoiceField(
        queryset=None, required=False, label="Sees only these agents"
    )
    manage_agents: forms.ModelMultipleChoiceField[Any] = forms.ModelMultipleChoiceField(
        queryset=None, required=False, label="Manages and runs only these agents"
    )
    review_agents: forms.ModelMultipleChoiceField[Any] = forms.ModelMultipleChoiceField(
        queryset=None, required=False, label="Reviews only these agents"
    )

    class Meta(UserChangeForm.Meta):  # type: ignore[name-defined]
        fields = ("username", "password", "first_name", "last_name", "email", "is_active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        agents = global_apps.get_model(access.AGENT_LABEL).objects.order_by("name")
        grants = access.agent_grants_held(user_id=self.instance.pk) if self.instance.pk else {}
        for name, grant in AGENT_SCOPE_FIELDS.items():
            field = self.fields[name]
            field.queryset = agents  # type: ignore[attr-defined]
            field.initial = sorted(grants.get(grant, ()))
        if self.instance.pk:
            self.fields["roles"].initial = list(
                self.instance.groups.filter(name__in=ROLE_CODES).values_list("name", flat=True)
            )


class AuditedUserAdmin(AccessAdminMixin, AuditedAdminMixin, UserAdmin):
    """Tenant admins manage users, their roles and agent scopes; never the superuser, staff or
    permission flags (roles decide staff access), and never API tokens."""

    access_view = access_add = access_change = access_delete = Capability.MANAGE_USERS
    form = MemberChangeForm
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "roles", "is_staff")}),
        (
            "Agents",
            {
                "fields": tuple(AGENT_SCOPE_FIELDS),
                "description": "Leave all three empty to let this user reach every agent their roles allow. "
                "Once any agent is listed here, the user reaches only the listed agents: they see "
                "each of them, manage those under 'manages' and review those under 'reviews'.",
            },
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("is_staff", "last_login", "date_joined")
    list_display = ("username", "email", "first_name", "last_name", "role_list", "is_active")
    list_filter = ("is_active", "groups")
    filter_horizontal = ()

    @admin.display(description="Roles")
    def role_list(self, obj: User) -> str:
        return ", ".join(sorted(g.name for g in obj.groups.all() if g.name in ROLE_CODES)) or "-"

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("groups")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if "roles" not in form.cleaned_data:
            return  # the add form: a new user starts without roles
        roles.user_roles_set(user=form.instance, roles=form.cleaned_data["roles"], actor=request.user)
        for name, grant in AGENT_SCOPE_FIELDS.items():
            roles.user_agent_scope_set(
                user=form.instance,
                grant=grant,
                actor=request.user,
                agent_ids=[agent.pk for agent in form.cleaned_data[name]],
            )


class RoleGroupAdmin(AccessAdminMixin, GroupAdmin):
    """Role groups are fixed codes whose permissions follow governance.access: shown, never edited."""

    access_view = Capability.MANAGE_USERS
    list_display = ("name", "capabilities")
    filter_horizontal = ()
    fields = ("name", "capabilities", "permissions")
    readonly_fields = fields

    @admin.display(description="Capabilities")
    def capabilities(self, obj: Group) -> str:
        return ", ".join(sorted(ROLE_CAPABILITIES[Role(obj.name)])) if obj.name in ROLE_CODES else "none (not a role)"


class OperatorUserAdmin(AuditedAdminMixin, UserAdmin):
    """The operators' own users (public schema)."""


class OperatorGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


class AuditEventAdmin(admin.ModelAdmin):
    """The chain is read-only everywhere, the admin included."""

    list_display = (
        "seq",
        "created_at",
        "actor_type",
        "actor_label",
        "verb",
        "target_type",
        "target_id",
        "correlation_id",
    )
    list_filter = ("verb", "actor_type", "target_type")
    search_fields = ("verb", "actor_label", "target_id", "correlation_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "seq",
        "created_at",
        "actor_type",
        "actor_id",
        "actor_label",
        "verb",
        "target_type",
        "target_id",
        "correlation_id",
        "data",
        "prev_hash",
        "hash",
        "body",
    )
    fields = readonly_fields
    list_per_page = 100
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TenantAuditEventAdmin(AccessAdminMixin, AuditEventAdmin):
    access_view = Capability.VIEW

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        # A user limited to some agents reads their events and their own actions, here as in
        # the API (list, change and history pages alike).
        return super().get_queryset(request).filter(audit_visible(request.user, audit_filter_parse({})).q)


def register_governance_admin(site: admin.AdminSite, *, tenant: bool = False) -> None:
    """Users, groups and the audit trail on ``site``: the tenant admin's versions (access by
    role, fixed role groups, API tokens but never DRF's plain ones) with ``tenant``, the
    operators' otherwise."""
    for model in (User, Group, TokenProxy):
        if site.is_registered(model):
            site.unregister(model)
    site.register(User, AuditedUserAdmin if tenant else OperatorUserAdmin)
    site.register(Group, RoleGroupAdmin if tenant else OperatorGroupAdmin)
    site.register(AuditEvent, TenantAuditEventAdmin if tenant else AuditEventAdmin)
    if tenant:
        site.register(ApiToken, ApiTokenAdmin)
        site.register(SsoProvider, SsoProviderAdmin)
        site.register(SsoIdentity, SsoIdentityAdmin)
        from governance.history_admin import register_role_history  # it builds on this module

        register_role_history(site)


admin.site.site_header = "Vigil"
admin.site.site_title = "Vigil"
admin.site.index_title = "Governance"
admin.site.login_form = LockoutAuthenticationForm
register_governance_admin(admin.site, tenant=True)
