"""Approval requests in the tenant admin: reviewers see the proposed action verbatim with its
hash and approve or reject it here (through hitl.services, like the API)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.errors import VigilError
from governance.access import Capability
from governance.admin import AccessAdminMixin
from hitl import services
from hitl.models import ApprovalRequest, ApprovalStatus


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(AccessAdminMixin, admin.ModelAdmin):
    """Everyone with a role sees the requests of the agents in their sight; deciding follows
    hitl.services.approval_refusal (role, agent scope, never one's own task or configuration)."""

    access_view = Capability.VIEW
    list_display = ("id", "tool", "task_link", "required_role", "status", "created_at", "decided_by", "decided_at")
    list_filter = ("status", "tool", "required_role")
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
        "decided_by",
        "decided_at",
        "decision_note",
        "created_at",
    )
    readonly_fields = fields
    change_form_template = "admin/hitl/approvalrequest/change_form.html"

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
        return super().get_queryset(request).select_related("task__agent", "decided_by")

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:approval_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="hitl_approvalrequest_decide",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        obj = kwargs.get("obj")
        context["can_decide"] = bool(
            obj
            and obj.status == ApprovalStatus.PENDING
            and services.approval_refusal(approval=obj, user=request.user) is None
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
                "refusal": refusal,
                "title": f"Decide: {approval.tool} for task {approval.task_id}",
            }
            return TemplateResponse(
                request, "admin/hitl/approvalrequest/decide.html", context, status=403 if refusal is not None else 200
            )
        verdict = request.POST.get("verdict", "")
        try:
            services.approval_decide(
                approval_id=approval_id,
                user=request.user,
                verdict=verdict,
                note=request.POST.get("note", ""),
                seen_hash=request.POST.get("action_hash"),
            )
            self.message_user(request, f"Request {approval_id}: {verdict}d", messages.SUCCESS)
        except (VigilError, ValueError) as exc:
            self.message_user(request, f"Request {approval_id}: {exc}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:hitl_approvalrequest_change", args=[approval_id]))
