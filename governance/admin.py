from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import Model
from django.http import HttpRequest

from governance.actors import Actor
from governance.models import AuditEvent
from governance.services import audit_record


class AuditedAdminMixin:
    """Every add, change and delete made through the admin lands in the audit chain, in the
    same transaction as the change (the admin wraps its writes in one)."""

    def _audit(self, request: HttpRequest, obj: Model, verb: str, message: Any) -> None:
        audit_record(actor=Actor.for_user(request.user), verb=verb,
                     target_type=obj._meta.label_lower, target_id=str(obj.pk),
                     data={"object": str(obj)[:200],
                           "change": message if isinstance(message, list) and len(json.dumps(message)) < 2000
                           else str(message)[:2000]})

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


class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    pass


class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


class AuditEventAdmin(admin.ModelAdmin):
    """The chain is read-only everywhere, the admin included."""

    list_display = ("seq", "created_at", "actor_type", "actor_label", "verb", "target_type", "target_id",
                    "correlation_id")
    list_filter = ("verb", "actor_type", "target_type")
    search_fields = ("verb", "actor_label", "target_id", "correlation_id")
    date_hierarchy = "created_at"
    readonly_fields = ("seq", "created_at", "actor_type", "actor_id", "actor_label", "verb", "target_type",
                       "target_id", "correlation_id", "data", "prev_hash", "hash", "body")
    fields = readonly_fields
    list_per_page = 100
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def register_governance_admin(site: admin.AdminSite) -> None:
    for model in (User, Group):
        if site.is_registered(model):
            site.unregister(model)
    site.register(User, AuditedUserAdmin)
    site.register(Group, AuditedGroupAdmin)
    site.register(AuditEvent, AuditEventAdmin)


admin.site.site_header = "Vigil"
admin.site.site_title = "Vigil"
admin.site.index_title = "Governance"
register_governance_admin(admin.site)
