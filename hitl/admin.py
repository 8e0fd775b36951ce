"""Approval requests in the tenant admin: reviewers see the proposed action verbatim with its
hash and approve or reject it here (through hitl.services, like the API)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.errors import VigilError
from hitl import services
from hitl.models import ApprovalRequest, ApprovalStatus


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = ("id", "tool", "task_link", "required_role", "status", "created_at", "decided_by", "decided_at")
    list_filter = ("status", "tool", "required_role")
    search_fields = ("tool", "action_hash")
    fields = ("task_link", "tool", "arguments_view", "action_hash", "privilege_level", "reasoning", "required_role",
              "status", "decided_by", "decided_at", "decision_note", "created_at")
    readonly_fields = fields
    change_form_template = "admin/hitl/approvalrequest/change_form.html"

    @admin.display(description="Task")
    def task_link(self, obj: ApprovalRequest) -> str:
        return format_html('<a href="{}">task {} ({})</a>', reverse("admin:agents_task_change", args=[obj.task_id]),
                           obj.task_id, obj.task.agent.name)

    @admin.display(description="Arguments")
    def arguments_view(self, obj: ApprovalRequest) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.arguments, indent=2, sort_keys=True))

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalRequest]:
        return super().get_queryset(request).select_related("task__agent", "decided_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return [path("<int:approval_id>/decide/", self.admin_site.admin_view(self.decide_view),
                     name="hitl_approvalrequest_decide")] + super().get_urls()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # requests are decided (below), never edited

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        obj = kwargs.get("obj")
        context["can_decide"] = bool(obj and obj.status == ApprovalStatus.PENDING and services.reviewer_may_decide(
            user=request.user, required_role=obj.required_role))
        return super().render_change_form(request, context, *args, **kwargs)

    def decide_view(self, request: HttpRequest, approval_id: int) -> HttpResponse:
        """GET: the action exactly as it will run, with approve and reject. POST: decide."""
        approval = get_object_or_404(self.get_queryset(request), pk=approval_id)
        if request.method != "POST":
            if not services.reviewer_may_decide(user=request.user, required_role=approval.required_role):
                raise PermissionDenied
            context = {**self.admin_site.each_context(request), "opts": self.model._meta, "original": approval,
                       "arguments": json.dumps(approval.arguments, indent=2, sort_keys=True),
                       "title": f"Decide: {approval.tool} for task {approval.task_id}"}
            return TemplateResponse(request, "admin/hitl/approvalrequest/decide.html", context)
        verdict = request.POST.get("verdict")
        try:
            services.approval_decide(approval_id=approval_id, user=request.user, verdict=verdict,
                                     note=request.POST.get("note", ""), seen_hash=request.POST.get("action_hash"))
            self.message_user(request, f"Request {approval_id}: {verdict}d", messages.SUCCESS)
        except (VigilError, ValueError) as exc:
            self.message_user(request, f"Request {approval_id}: {exc}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:hitl_approvalrequest_change", args=[approval_id]))
