"""Role assignments in the tenant admin: who holds which role, and the history of each grant
and revocation with who and why (governance.history keeps the rows in step with the role
groups). Read only: roles are given on the user's page or over the roles API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from governance.access import Capability
from governance.admin import AccessAdminMixin


class RoleAssignmentAdmin(AccessAdminMixin, SimpleHistoryAdmin):
    """Who holds which role, and the history of each grant and revocation (who and why).
    Read only: roles are given on the user's page or over the roles API."""

    access_view = Capability.MANAGE_USERS
    list_display = ("user", "role", "assigned_at")
    list_filter = ("role",)
    search_fields = ("user__username",)
    list_select_related = ("user",)
    fields = ("user", "role", "assigned_at")
    readonly_fields = fields
    actions = None

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)
