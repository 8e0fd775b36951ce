"""Approval policies in the tenant admin: every role reads them, admins create and change them.
Saving goes through hitl.policies like the API: a change of rules is a new version (the
versions are listed read-only below the form), a change of flags (enabled, shadow, order,
description) is audited as such; nothing is ever deleted."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from governance.access import Capability
from governance.admin import AccessAdminMixin
from hitl import policies
from hitl.models import Policy, PolicyGate, PolicyTerminal, PolicyVersion

_JSON_HELP = {
    "conditions": 'e.g. {"tools": ["issue_refund"], "arguments": [{"argument": "amount", "gt": 100}]}; '
    "keys: agents, tools, privilege_min, privilege_max, tiers, arguments; {} matches every tool call",
    "sla_minutes": 'minutes to decide by priority, e.g. {"high": 30, "medium": 120}; missing ones keep the default',
    "ladder": 'e.g. {"reminder_share": 0.5, "steps": [{"role": "admin", "raise_priority": true}]}',
}


class PolicyForm(forms.ModelForm):
    """The policy's flags and the content of its next version (prefilled with the current one)."""

    conditions = forms.JSONField(initial=dict, help_text=_JSON_HELP["conditions"])
    gate = forms.ChoiceField(choices=PolicyGate.choices, initial=PolicyGate.APPROVAL)
    approver_role = forms.ChoiceField(choices=[(r, r) for r in policies.APPROVER_ROLES], initial="reviewer")
    quorum = forms.IntegerField(min_value=1, max_value=policies.MAX_QUORUM, initial=1)
    priority = forms.ChoiceField(
        choices=[("", "the task's"), *((name, name) for name in policies.PRIORITY_BY_NAME)], required=False
    )
    sla_minutes = forms.JSONField(initial=dict, required=False, help_text=_JSON_HELP["sla_minutes"])
    ladder = forms.JSONField(initial=dict, required=False, help_text=_JSON_HELP["ladder"])
    terminal = forms.ChoiceField(choices=PolicyTerminal.choices, initial=PolicyTerminal.EXPIRE)
    reason = forms.CharField(max_length=500, required=False, help_text="why: recorded with the new version")

    class Meta:
        model = Policy
        fields = ("name", "description", "enabled", "shadow", "order")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.current if self.instance.pk else None
        if current is not None:
            for key, value in policies.version_content(current).items():
                if key in self.fields:
                    self.fields[key].initial = value if value is not None else ""
        if self.instance.pk and "name" in self.fields:
            self.fields["name"].disabled = True

    def content(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "conditions": data.get("conditions") or {},
            "gate": data.get("gate"),
            "approver_role": data.get("approver_role"),
            "quorum": data.get("quorum"),
            "priority": data.get("priority") or None,
            "sla_minutes": data.get("sla_minutes") or {},
            "ladder": data.get("ladder") or {},
            "terminal": data.get("terminal"),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            self.cleaned_content = policies.policy_content_validate(self.content())
        except policies.PolicyInvalid as exc:
            for field, problem in exc.extra["fields"].items():
                name = re.split(r"[.\[]", field, maxsplit=1)[0]
                self.add_error(name if name in self.fields else None, f"{field}: {problem}")
        return cleaned


class PolicyVersionInline(AccessAdminMixin, admin.TabularInline):
    """Every version, newest first, read only: versions are never edited."""

    model = PolicyVersion
    fk_name = "policy"
    extra = 0
    can_delete = False
    ordering = ("-version",)
    fields = ("version", "summary", "reason", "created_by", "created_at")
    readonly_fields = fields

    @admin.display(description="Rules")
    def summary(self, obj: PolicyVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(policies.version_content(obj), indent=1, sort_keys=True))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Policy)
class PolicyAdmin(AccessAdminMixin, admin.ModelAdmin):
    """Approval policies by precedence: the first enabled, non-shadow policy that matches a tool
    call decides its gate, approvers, quorum, SLA and ladder."""

    access_view = Capability.VIEW
    access_add = policies.POLICY_WRITE
    access_change = policies.POLICY_WRITE
    access_delete = None
    form = PolicyForm
    list_display = ("name", "order", "enabled", "shadow", "version", "gate", "quorum", "updated_at")
    list_filter = ("enabled", "shadow")
    search_fields = ("name", "description")
    inlines = (PolicyVersionInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Policy]:
        return super().get_queryset(request).select_related("current")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        flags = ["name", "description", "enabled", "shadow", "order"]
        if not self.has_change_permission(request, obj) and obj is not None:
            return [*flags, "rules"]
        content = ["conditions", "gate", "approver_role", "quorum", "priority", "sla_minutes", "ladder", "terminal"]
        return [*flags, *content, "reason"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return ["name", "description", "enabled", "shadow", "order", "rules"]
        return []

    @admin.display(description="Rules in force")
    def rules(self, obj: Policy) -> str:
        content = policies.version_content(obj.current) if obj.current else {}
        return format_html("<pre>{}</pre>", json.dumps(content, indent=1, sort_keys=True))

    @admin.display(description="Version")
    def version(self, obj: Policy) -> int | None:
        return obj.current.version if obj.current else None

    @admin.display(description="Gate")
    def gate(self, obj: Policy) -> str:
        return obj.current.gate if obj.current else "-"

    @admin.display(description="Quorum")
    def quorum(self, obj: Policy) -> int | None:
        return obj.current.quorum if obj.current else None

    def save_model(self, request: HttpRequest, obj: Policy, form: Any, change: bool) -> None:
        """Through hitl.policies, never the model's own save: the checks and the audit trail."""
        data = form.cleaned_data
        if not change:
            created = policies.policy_create(
                name=data["name"],
                description=data.get("description", ""),
                enabled=data.get("enabled", True),
                shadow=data.get("shadow", False),
                order=data.get("order", 100),
                content=form.cleaned_content,
                reason=data.get("reason", ""),
                user=request.user,
            )
            obj.pk, obj.current, obj.created_at, obj.updated_at = (
                created.pk,
                created.current,
                created.created_at,
                created.updated_at,
            )
            return
        policies.policy_update(
            policy_id=obj.pk,
            user=request.user,
            enabled=data.get("enabled"),
            shadow=data.get("shadow"),
            order=data.get("order"),
            description=data.get("description"),
        )
        current = Policy.objects.select_related("current").get(pk=obj.pk).current
        if current is None or policies.version_content(current) != _shown(form.cleaned_content):
            policies.policy_version_create(
                policy_id=obj.pk, content=form.cleaned_content, reason=data.get("reason", ""), user=request.user
            )


def _shown(cleaned: dict[str, Any]) -> dict[str, Any]:
    """Validated content in the shape ``version_content`` returns (priority by name)."""
    priority = cleaned.get("priority")
    names = {value: name for name, value in policies.PRIORITY_BY_NAME.items()}
    return {**cleaned, "priority": names.get(priority) if priority else None}
