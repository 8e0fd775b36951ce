"""Tenant admin screens for agents, tasks and the outbox. Every change goes through
agents.services, so it is validated, versioned and audited like an API call."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from agents import services
from agents.exceptions import InvalidAgentConfig
from agents.limits import LimitExceeded
from agents.models import Agent, AgentConfigVersion, OutboxMessage, Step, Task, TaskEvent, TaskPriority
from config.errors import VigilError
from governance import access
from governance.access import Capability
from governance.actors import Actor
from governance.admin import AccessAdminMixin
from governance.history import REASON_ATTRIBUTE

VERSIONED = ("config", "model_settings", "privilege_ceiling", "automation_level")


class AgentForm(forms.ModelForm):
    reason = forms.CharField(required=False, max_length=500, help_text="why this change (kept in the version history)")

    class Meta:
        model = Agent
        fields = [
            "name",
            "description",
            "blueprint",
            "config",
            "model_settings",
            "privilege_ceiling",
            "automation_level",
            "tools",
            "reason",
        ]
        widgets = {"blueprint": forms.Select(choices=[])}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from agents.blueprints import BLUEPRINTS

        # A user who may only view the agent gets a form without fields (the admin shows it read-only).
        if "blueprint" in self.fields:
            self.fields["blueprint"].widget = forms.Select(choices=[(b, b) for b in sorted(BLUEPRINTS)])
        for name in ("blueprint", "name"):
            if self.instance.pk and name in self.fields:
                self.fields[name].disabled = True

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            services._validate_agent_fields(
                blueprint=data.get("blueprint") or self.instance.blueprint,
                config=data.get("config"),
                model_settings=data.get("model_settings"),
                privilege_ceiling=data.get("privilege_ceiling"),
                automation_level=data.get("automation_level"),
            )
        except InvalidAgentConfig as exc:
            for key, message in exc.extra.get("fields", {}).items():
                field = key.split(".")[0]
                self.add_error(field if field in self.fields else None, f"{key}: {message}")
            if not exc.extra.get("fields"):
                raise forms.ValidationError(str(exc)) from exc
        return data


class VersionInline(AccessAdminMixin, admin.TabularInline):
    model = AgentConfigVersion
    extra = 0
    can_delete = False
    fields = ("version", "created_at", "author_label", "reason", "diff_summary", "rollback")
    readonly_fields = fields
    ordering = ("-version",)

    @admin.display(description="")
    def rollback(self, obj: AgentConfigVersion) -> str:
        if obj.version == obj.agent.version:
            return "current"
        url = reverse("admin:agents_agent_rollback", args=[obj.agent_id, obj.version])
        return format_html('<a href="{}">roll back to v{}…</a>', url, obj.version)

    @admin.display(description="Changed")
    def diff_summary(self, obj: AgentConfigVersion) -> str:
        return ", ".join(obj.diff) or "-"


@admin.register(Agent)
class AgentAdmin(AccessAdminMixin, SimpleHistoryAdmin):
    """Agents are created and changed through agents.services; they are paused, never deleted
    here (their tasks keep them), and the history shows old versions without reverting to them
    (rolling back makes a new version through the service)."""

    access_view, access_add, access_change = Capability.VIEW, Capability.MANAGE_AGENTS, Capability.MANAGE_AGENTS
    form = AgentForm
    list_display = ("name", "blueprint", "status", "automation_level", "privilege_ceiling", "version", "updated_at")
    list_filter = ("blueprint", "status", "automation_level")
    search_fields = ("name", "description")
    filter_horizontal = ("tools",)
    inlines = [VersionInline]
    actions = ["pause_selected", "resume_selected"]
    readonly_fields = ("version", "status", "run_link")

    def get_fields(self, request: HttpRequest, obj: Agent | None = None) -> list[str]:
        fields = [
            "name",
            "description",
            "blueprint",
            "config",
            "model_settings",
            "privilege_ceiling",
            "automation_level",
            "tools",
            "reason",
        ]
        return fields + (["version", "status", "run_link"] if obj else [])

    @admin.display(description="Run")
    def run_link(self, obj: Agent) -> str:
        url = reverse("admin:agents_agent_run", args=[obj.pk])
        return format_html('<a class="button" href="{}">Run this agent on a ticket or event…</a>', url)

    # The form saves inside the transaction Django's changeform_view opens (agent, grants and
    # version in one), so it calls the services' "_within" forms: the others are durable.
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A tier limit is checked where the agent is written, under the tenant's audit lock; its
        # refusal rolls the admin's transaction back and comes back as a message, not a 500.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except LimitExceeded as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        reason = form.cleaned_data.get("reason", "")
        setattr(request, REASON_ATTRIBUTE, reason)  # the history record's reason too (governance.history)
        if not change:
            created = services.agent_create_within(
                name=obj.name,
                blueprint=obj.blueprint,
                config=obj.config,
                model_settings=obj.model_settings,
                privilege_ceiling=obj.privilege_ceiling,
                automation_level=obj.automation_level,
                description=obj.description,
                user=request.user,
                tools=None,
            )
            obj.pk = created.pk
            obj._state.adding = False
            return
        changes = {f: form.cleaned_data[f] for f in VERSIONED if f in form.changed_data}
        services.agent_update_within(
            agent_id=obj.pk,
            user=request.user,
            reason=reason,
            description=form.cleaned_data.get("description", obj.description),
            **changes,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if "tools" in form.changed_data:
            services.agent_tools_set_within(
                agent_id=form.instance.pk, user=request.user, tools=[t.name for t in form.cleaned_data["tools"]]
            )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def _status(self, request: HttpRequest, queryset: QuerySet[Agent], status: str) -> None:
        queryset = access.scoped(request.user, Capability.MANAGE_AGENTS, queryset)
        for agent in queryset:
            services.agent_status_set(agent_id=agent.pk, status=status, user=request.user)
        self.message_user(request, f"{queryset.count()} agent(s) {status}", messages.SUCCESS)

    @admin.action(description="Pause selected agents (stop at the next step)", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        self._status(request, queryset, "paused")

    @admin.action(description="Resume selected agents", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        self._status(request, queryset, "enabled")

    def get_urls(self) -> list[Any]:
        return [
            path("<int:agent_id>/run/", self.admin_site.admin_view(self.run_view), name="agents_agent_run"),
            path(
                "<int:agent_id>/rollback/<int:version>/",
                self.admin_site.admin_view(self.rollback_view),
                name="agents_agent_rollback",
            ),
            *super().get_urls(),
        ]

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied  # a revert would bypass the service: roll back instead
        return super().history_form_view(request, object_id, version_id, extra_context)

    def _agent_for(self, request: HttpRequest, agent_id: int, capability: Capability) -> Agent:
        agent = get_object_or_404(self.get_queryset(request), pk=agent_id)
        if not access.user_may(request.user, capability, agent):
            raise PermissionDenied
        return agent

    def run_view(self, request: HttpRequest, agent_id: int) -> HttpResponse:
        agent = self._agent_for(request, agent_id, Capability.RUN)
        from agents.blueprints import blueprint_class

        example = {
            "triage": {
                "text": "I was charged twice for my subscription this month, please refund 29 EUR for order #A1001",
                "customer_email": "dana@example.com",
            },
            "resolution": {
                "text": "Please refund 25 EUR for order #AB1234, the mug arrived broken",
                "customer_email": "dana@example.com",
            },
            "ops": {"service": "checkout-api", "kind": "crashloop", "message": "pod restarted 12 times"},
        }
        text = request.POST.get("input") or json.dumps(example.get(agent.blueprint, {}), indent=2)
        error = ""
        if request.method == "POST":
            try:
                payload = json.loads(text)
                priority = int(request.POST.get("priority", TaskPriority.MEDIUM))
                task = services.task_submit(agent_id=agent.pk, input=payload, priority=priority, user=request.user)
                self.message_user(request, f"Task {task.pk} queued for {agent.name}", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:agents_task_change", args=[task.pk]))
            except json.JSONDecodeError as exc:
                error = f"input is not valid JSON: {exc}"
            except (ValueError, VigilError) as exc:
                fields = getattr(exc, "extra", {}).get("fields")
                error = f"{exc}: {fields}" if fields else str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "agent": agent,
            "input": text,
            "error": error,
            "priorities": TaskPriority.choices,
            "input_schema": json.dumps(blueprint_class(agent.blueprint).input_schema, indent=2),
            "title": f"Run {agent.name}",
        }
        return TemplateResponse(request, "admin/agents/agent/run.html", context)

    def rollback_view(self, request: HttpRequest, agent_id: int, version: int) -> HttpResponse:
        agent = self._agent_for(request, agent_id, Capability.MANAGE_AGENTS)
        if request.method != "POST":
            old = get_object_or_404(AgentConfigVersion, agent=agent, version=version)
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "agent": agent,
                "old": old,
                "title": f"Roll {agent.name} back to v{version}?",
                "old_settings": json.dumps({f: getattr(old, f) for f in VERSIONED}, indent=2),
                "current_settings": json.dumps({f: getattr(agent, f) for f in VERSIONED}, indent=2),
            }
            return TemplateResponse(request, "admin/agents/agent/rollback.html", context)
        try:
            agent = services.agent_rollback(agent_id=agent_id, version=version, user=request.user)
            self.message_user(
                request, f"{agent.name}: rolled back to v{version} (now v{agent.version})", messages.SUCCESS
            )
        except VigilError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:agents_agent_change", args=[agent_id]))


class StepInline(AccessAdminMixin, admin.TabularInline):
    model = Step
    extra = 0
    can_delete = False
    fields = ("index", "action", "decision", "arguments_view", "result_view", "tokens", "latency_ms", "created_at")
    readonly_fields = fields
    ordering = ("index",)

    @admin.display(description="Arguments")
    def arguments_view(self, obj: Step) -> str:
        return format_html("<code>{}</code>", json.dumps(obj.arguments)[:400])

    @admin.display(description="Result")
    def result_view(self, obj: Step) -> str:
        return format_html("<code>{}</code>", json.dumps(obj.result)[:400])


class TaskEventInline(AccessAdminMixin, admin.TabularInline):
    model = TaskEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "from_state", "to_state", "reason", "actor", "attempt")
    readonly_fields = fields
    ordering = ("id",)


@admin.register(Task)
class TaskAdmin(AccessAdminMixin, admin.ModelAdmin):
    """Tasks are started by running an agent and change through their actions (cancel, retry),
    never by editing."""

    list_display = ("id", "agent", "state", "priority", "retry_count", "created_at", "finished_at")
    list_filter = ("state", "priority", ("agent", admin.RelatedOnlyFieldListFilter))
    search_fields = ("id", "correlation_id", "last_error")
    date_hierarchy = "created_at"
    inlines = [StepInline, TaskEventInline]
    actions = ["cancel_selected", "retry_selected"]
    fields = (
        "agent",
        "state",
        "priority",
        "input_view",
        "output_view",
        "approvals",
        "attempt",
        "retry_count",
        "last_error",
        "correlation_id",
        "agent_version",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields

    @admin.display(description="Input")
    def input_view(self, obj: Task) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.input, indent=2))

    @admin.display(description="Output")
    def output_view(self, obj: Task) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.output, indent=2)) if obj.output else "-"

    @admin.display(description="Approvals")
    def approvals(self, obj: Task) -> str:
        rows = [
            (reverse("admin:hitl_approvalrequest_change", args=[a.pk]), a.tool, a.status) for a in obj.approvals.all()
        ]
        return format_html_join(", ", '<a href="{}">{} ({})</a>', rows) if rows else "-"

    def has_run_permission(self, request: HttpRequest) -> bool:
        return access.user_may(request.user, Capability.RUN)

    def _each(self, request: HttpRequest, queryset: QuerySet[Task], call: Any, done: str) -> None:
        ok = 0
        for task in access.scoped(request.user, Capability.RUN, queryset):
            try:
                call(task_id=task.pk, user=request.user)
                ok += 1
            except VigilError as exc:
                self.message_user(request, f"task {task.pk}: {exc}", messages.ERROR)
        if ok:
            self.message_user(request, f"{ok} task(s) {done}", messages.SUCCESS)

    @admin.action(description="Cancel selected tasks", permissions=["run"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._each(request, queryset, services.task_cancel, "cancelled")

    @admin.action(description="Retry selected escalated tasks", permissions=["run"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._each(request, queryset, services.task_retry, "sent back to the workers")


@admin.register(OutboxMessage)
class OutboxAdmin(AccessAdminMixin, admin.ModelAdmin):
    """Every side effect the agents produced, one row per effect (idempotency key)."""

    list_display = ("id", "kind", "task_link", "key", "status", "attempts", "created_at", "delivered_at")
    list_filter = ("kind", "status")
    search_fields = ("effect__idempotency_key",)
    fields = (
        "kind",
        "payload",
        "key",
        "task_link",
        "status",
        "attempts",
        "last_error",
        "endpoint",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    )
    readonly_fields = fields
    actions = ["replay_selected"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return access.user_may(request.user, Capability.MANAGE_USERS)

    @admin.action(description="Replay selected dead letters (dead, failed or unrouted)", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        from agents.integrations.relay import outbox_replay

        ok = 0
        for message in queryset:
            try:
                outbox_replay(message_id=message.pk, actor=Actor.for_user(request.user))
                ok += 1
            except VigilError as exc:
                self.message_user(request, f"message {message.pk}: {exc}", messages.ERROR)
        if ok:
            self.message_user(request, f"{ok} message(s) sent again", messages.SUCCESS)

    @admin.display(description="Idempotency key")
    def key(self, obj: OutboxMessage) -> str:
        return obj.effect.idempotency_key

    @admin.display(description="Task")
    def task_link(self, obj: OutboxMessage) -> str:
        return format_html(
            '<a href="{}">task {}</a>',
            reverse("admin:agents_task_change", args=[obj.effect.task_id]),
            obj.effect.task_id,
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxMessage]:
        return super().get_queryset(request).select_related("effect")


from agents import (  # noqa: E402  (register their screens: event sources, credentials and endpoints)
    admin_intake,  # noqa: F401
    admin_integrations,  # noqa: F401
)
