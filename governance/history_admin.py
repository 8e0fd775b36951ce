"""History pages of governed models in the admin, and the reason their change forms require.

``GovernedHistoryAdmin`` adds a required "reason for this change" to the add and change forms;
the reason rides on the request (governance.history) into the ``history_change_reason`` of
the records the save writes, whichever service does the writing. Reverting from a history
page is refused: it would write the old row back past the services that validate and audit.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from governance.history import REASON_ATTRIBUTE, REASON_MAX
from governance.models import RoleAssignment

REASON = "history_change_reason"


class ReasonForm(forms.Form):
    history_change_reason = forms.CharField(
        label="Reason for this change",
        max_length=REASON_MAX,
        help_text="kept in this object's history with your name",
    )


class GovernedHistoryAdmin(SimpleHistoryAdmin):
    def _editable(self, request: HttpRequest, obj: Any) -> bool:
        return self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if self._editable(request, obj):
            base = kwargs.get("form") or self.form
            kwargs["form"] = type(f"{base.__name__}WithReason", (base, ReasonForm), {})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = [
            (name, {**options, "fields": [f for f in options["fields"] if f != REASON]})
            for name, options in super().get_fieldsets(request, obj)
        ]
        if self._editable(request, obj):
            fieldsets.append(("Reason", {"fields": [REASON]}))
        return fieldsets

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        setattr(request, REASON_ATTRIBUTE, form.cleaned_data.get(REASON, ""))
        return super().save_form(request, form, change)

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied  # a revert would bypass the services
        return super().history_form_view(request, object_id, version_id, extra_context)


def register_role_history(site: admin.AdminSite) -> None:
    # Imported here: it builds on governance.admin, which imports this module's classes.
    from governance.role_history_admin import RoleAssignmentAdmin

    site.register(RoleAssignment, RoleAssignmentAdmin)
