"""Tenant admin screens for event sources (agents.intake). The signing secret is write-only:
the form sets or rotates it and never shows it; every change goes through the intake's
services, so it is validated and audited like an API call."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from agents import intake
from agents.models import Agent, EventSource
from config.errors import VigilError
from governance import access
from governance.access import Capability
from governance.actors import Actor
from governance.admin import AccessAdminMixin


class EventSourceForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            f"the signing secret ({intake.SECRET_MIN_LENGTH} to {intake.SECRET_MAX_LENGTH} printable characters). "
            "It is never shown again: on an existing source, leave it empty to keep the current one, "
            "or give a new one to rotate it."
        ),
    )

    class Meta:
        model = EventSource
        fields = ["name", "kind", "agent", "enabled", "secret"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "agent" in self.fields:
            agents = Agent.objects.filter(blueprint="ops")
            user = getattr(self, "user", None)
            if user is not None:
                agents = access.scoped(user, Capability.MANAGE_AGENTS, agents)
            self.fields["agent"].queryset = agents  # type: ignore[attr-defined]
        if self.instance.pk and "name" in self.fields:
            self.fields["name"].disabled = True
        if not self.instance.pk and "secret" in self.fields:
            self.fields["secret"].required = True

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        secret = data.get("secret") or None
        try:
            if secret is not None:
                intake.secret_checked(secret)
        except VigilError as exc:
            for key, message in exc.extra.get("fields", {}).items():
                self.add_error(key if key in self.fields else None, message)
        return data


@admin.register(EventSource)
class EventSourceAdmin(AccessAdminMixin, admin.ModelAdmin):
    """Sources are disabled rather than deleted: their events keep the record of which task
    each started."""

    access_view, access_add, access_change = Capability.VIEW, Capability.MANAGE_AGENTS, Capability.MANAGE_AGENTS
    form = EventSourceForm
    list_display = ("name", "kind", "agent", "enabled", "secret_rotated_at", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    readonly_fields = ("ingest_path", "secret_rotated_at", "created_at", "updated_at")

    def get_fields(self, request: HttpRequest, obj: EventSource | None = None) -> Any:
        fields = ["name", "kind", "agent", "enabled"]
        if obj is None or self.has_change_permission(request, obj):
            fields.append("secret")  # a form field only: nothing to show to who may only look
        return fields + (["ingest_path", "secret_rotated_at", "created_at", "updated_at"] if obj else [])

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # type: ignore[attr-defined]  # narrows the agents offered
        return form

    @admin.display(description="Ingest URL path")
    def ingest_path(self, obj: EventSource) -> str:
        return format_html("<code>POST /api/v1/events/ingest/{}/</code>", obj.name)

    def save_model(self, request: HttpRequest, obj: EventSource, form: Any, change: bool) -> None:
        # Inside the transaction of Django's changeform_view: the services' "_within" forms.
        data, actor = form.cleaned_data, Actor.for_user(request.user)
        if not change:
            created = intake.source_create_within(
                name=data["name"],
                kind=data["kind"],
                agent_name=data["agent"].name,
                secret=data["secret"],
                enabled=data["enabled"],
                actor=actor,
            )
            obj.pk = created.pk
            obj._state.adding = False
            return
        intake.source_update_within(
            name=obj.name,
            actor=actor,
            kind=data["kind"],
            agent_name=data["agent"].name,
            enabled=data["enabled"],
            secret=data.get("secret") or None,
        )
