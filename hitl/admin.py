"""Approval requests in the tenant admin: reviewers see the proposed action verbatim with its
hash and approve or reject it here (through hitl.services, like the API)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from config.errors import VigilError
from governance.access import Capability
from governance.admin import AccessAdminMixin, AuditedAdminMixin
from hitl import assignment, selectors, services
from hitl.admin_escalation import EscalateActionForm, EscalationAdminMixin
from hitl.admin_policies import PolicyAdmin  # noqa: F401  (registers the approval policies' admin)
from hitl.models import ApprovalRequest, ReviewerProfile

CLAIM, RELEASE = "claim", "release"
QUEUE_PAGE = 50


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(AccessAdminMixin, EscalationAdminMixin, admin.ModelAdmin):
    """Everyone with a role sees the requests of the agents in their sight; deciding follows
    hitl.services.approval_refusal (role, agent scope, never one's own task or configuration)."""

    access_view = Capability.VIEW
    list_display = (
        "id",
        "tool",
        "task_link",
        "priority",
        "status",
        "assignee",
        "due_at",
        "required_role",
        "decided_by",
        "decided_at",
    )
    list_filter = ("status", "priority", "tool", "required_role")
    search_fields = ("tool", "action_hash")
    fields = (
        "task_link",
        "tool",
        "arguments_view",
        "action_hash",
        "privilege_level",
        "reasoning",
        "required_role",
        "status",
        "priority",
        "due_at",
        "assignee",
        "escalation_level",
        "evidence_hash",
        "original_hash",
        "decided_by",
        "decided_at",
        "decision_note",
        "created_at",
    )
    readonly_fields = fields
    change_form_template = "admin/hitl/approvalrequest/change_form.html"
    actions = ["escalate_selected"]
    action_form = EscalateActionForm

    @admin.display(description="Task")
    def task_link(self, obj: ApprovalRequest) -> str:
        return format_html(
            '<a href="{}">task {} ({})</a>',
            reverse("admin:agents_task_change", args=[obj.task_id]),
            obj.task_id,
            obj.task.agent.name,
        )

    @admin.display(description="Arguments")
    def arguments_view(self, obj: ApprovalRequest) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.arguments, indent=2, sort_keys=True))

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalRequest]:
        return super().get_queryset(request).select_related("task__agent", "decided_by", "assignee")

    def get_urls(self) -> list[Any]:
        return [
            path("queue/", self.admin_site.admin_view(self.queue_view), name="hitl_approvalrequest_queue"),
            path("team/", self.admin_site.admin_view(self.team_view), name="hitl_approvalrequest_team"),
            path(
                "<int:approval_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="hitl_approvalrequest_decide",
            ),
            *self.escalation_urls(),
            *super().get_urls(),
        ]

    def _queue(self, request: HttpRequest, *, mine: bool) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        queue = selectors.approval_queue_for(user=request.user, assignee="me" if mine else None)
        page = Paginator(queue, QUEUE_PAGE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "My queue" if mine else "Team queue",
            "mine": mine,
            "page": page,
            "now": timezone.now(),
        }
        return TemplateResponse(request, "admin/hitl/approvalrequest/queue.html", context)

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        """My queue: the open requests assigned to me, by priority then deadline."""
        return self._queue(request, mine=True)

    def team_view(self, request: HttpRequest) -> HttpResponse:
        """Team queue: every open request in my sight, by priority then deadline."""
        return self._queue(request, mine=False)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        obj = kwargs.get("obj")
        context["can_decide"] = bool(
            obj and obj.is_open and services.approval_refusal(approval=obj, user=request.user) is None
        )
        return super().render_change_form(request, context, *args, **kwargs)

    def decide_view(self, request: HttpRequest, approval_id: int) -> HttpResponse:
        """GET: the action exactly as it will run, with approve and reject. POST: decide. A user
        who may not decide gets the page without the form and the rule that refuses them (403)."""
        approval = get_object_or_404(self.get_queryset(request), pk=approval_id)
        refusal = services.approval_refusal(approval=approval, user=request.user)
        if request.method != "POST" or refusal is not None:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": approval,
                "arguments": json.dumps(approval.arguments, indent=2, sort_keys=True),
                "task_input": json.dumps(approval.evidence.get("task", {}).get("input"), indent=2, sort_keys=True),
                "steps": approval.evidence.get("steps", []),
                "sources": approval.evidence.get("sources", []),
                "history": approval.history.select_related("actor"),
                "refusal": refusal,
                "is_assignee": approval.assignee_id == request.user.pk,
                "quorum": services.quorum_progress(approval),
                "title": f"Decide: {approval.tool} for task {approval.task_id}",
                **self.escalation_context(request, approval, may_decide=refusal is None),
            }
            return TemplateResponse(
                request, "admin/hitl/approvalrequest/decide.html", context, status=403 if refusal is not None else 200
            )
        verdict = request.POST.get("verdict", "")
        try:
            done = self._decide_post(request, approval_id, verdict)
            self.message_user(request, f"Request {approval_id}: {done}", messages.SUCCESS)
        except (VigilError, ValueError) as exc:
            self.message_user(request, f"Request {approval_id}: {exc}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:hitl_approvalrequest_decide", args=[approval_id]))
        if verdict in (CLAIM, RELEASE):
            return HttpResponseRedirect(reverse("admin:hitl_approvalrequest_decide", args=[approval_id]))
        return HttpResponseRedirect(reverse("admin:hitl_approvalrequest_queue"))

    def _decide_post(self, request: HttpRequest, approval_id: int, verdict: str) -> str:
        if verdict == CLAIM:
            assignment.approval_claim(approval_id=approval_id, user=request.user)
            return "claimed"
        if verdict == RELEASE:
            assignment.approval_release(approval_id=approval_id, user=request.user)
            return "released"
        arguments: dict[str, Any] | None = None
        if verdict == services.EDIT:
            try:
                arguments = json.loads(request.POST.get("arguments", ""))
            except json.JSONDecodeError as exc:
                raise ValueError(f"the edited arguments are not JSON: {exc}") from None
        decided = services.approval_decide(
            approval_id=approval_id,
            user=request.user,
            verdict=verdict,
            note=request.POST.get("note", ""),
            seen_hash=request.POST.get("action_hash"),
            arguments=arguments,
            reason_required=True,
        )
        if decided.is_open:  # an approval short of the quorum
            progress = services.quorum_progress(decided)
            return f"your approval is recorded ({progress['approvals']} of {progress['required']} needed)"
        return str(decided.get_status_display()).lower()


@admin.register(ReviewerProfile)
class ReviewerProfileAdmin(AccessAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Who gets approval requests automatically: availability and capacity, set by admins
    (``manage_users``). ``open_count`` is kept by hitl.assignment and read only here."""

    access_view = Capability.VIEW
    access_add = Capability.MANAGE_USERS
    access_change = Capability.MANAGE_USERS
    access_delete = Capability.MANAGE_USERS
    list_display = ("user", "available", "capacity", "open_count", "last_assigned_at")
    list_filter = ("available",)
    fields = ("user", "available", "capacity", "open_count", "last_assigned_at")
    readonly_fields = ("open_count", "last_assigned_at")
    raw_id_fields = ("user",)
