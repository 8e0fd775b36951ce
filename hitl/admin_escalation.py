"""Manual escalation and clarification in the tenant admin: the "Escalate selected" action of
the approval requests' list (its reason typed next to the action), and the Escalate and Ask
forms of the decision page, each posting to its own view. All of them go through
hitl.escalation and hitl.clarification, like the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from config.errors import VigilError
from governance import access
from governance.access import Capability
from hitl import clarification, escalation
from hitl.models import ApprovalRequest, ApprovalStatus


class EscalateActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=escalation.REASON_MAX,
        label="Reason (to escalate)",
        widget=forms.TextInput(attrs={"size": 40}),
    )


class EscalationAdminMixin:
    """Mixed into the approval requests' admin (hitl.admin), which gives ``admin_site``,
    ``get_queryset`` and ``message_user``."""

    admin_site: admin.AdminSite
    get_queryset: Any
    message_user: Any

    def has_review_permission(self, request: HttpRequest) -> bool:
        return access.user_may(request.user, Capability.REVIEW)

    @admin.action(description="Escalate selected requests to the next tier", permissions=["review"])
    def escalate_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, "Escalating needs a reason: type it next to the action.", messages.ERROR)
            return
        done = 0
        for approval_id in queryset.values_list("pk", flat=True):
            try:
                escalation.approval_escalate(user=request.user, reason=reason, approval_id=approval_id)
                done += 1
            except VigilError as exc:
                self.message_user(request, f"Request {approval_id}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} request(s) escalated", messages.SUCCESS)

    def escalation_urls(self) -> list[Any]:
        return [
            path(
                "<int:approval_id>/escalate/",
                self.admin_site.admin_view(self.escalate_view),
                name="hitl_approvalrequest_escalate",
            ),
            path(
                "<int:approval_id>/clarify/",
                self.admin_site.admin_view(self.clarify_view),
                name="hitl_approvalrequest_clarify",
            ),
        ]

    def escalation_context(
        self, request: HttpRequest, approval: ApprovalRequest, *, may_decide: bool
    ) -> dict[str, Any]:
        """What the decision page shows of it: the questions and answers, and which of the two
        forms the user gets."""
        return {
            "clarifications": approval.clarifications.select_related("asked_by", "answered_by").order_by("id"),
            "can_escalate": approval.is_open
            and approval.status != ApprovalStatus.CLARIFICATION
            and access.user_may(request.user, Capability.REVIEW, approval),
            "can_ask": may_decide and approval.is_open and approval.status != ApprovalStatus.CLARIFICATION,
        }

    def _post(self, request: HttpRequest, approval_id: int, call: Any, done: str) -> HttpResponse:
        approval = get_object_or_404(self.get_queryset(request), pk=approval_id)
        page = HttpResponseRedirect(reverse("admin:hitl_approvalrequest_decide", args=[approval.pk]))
        if request.method != "POST":
            return page
        if not access.user_may(request.user, Capability.REVIEW, approval):
            raise PermissionDenied
        try:
            call(approval)
            self.message_user(request, f"Request {approval_id}: {done}", messages.SUCCESS)
        except VigilError as exc:
            self.message_user(request, f"Request {approval_id}: {exc}", messages.ERROR)
        return page

    def escalate_view(self, request: HttpRequest, approval_id: int) -> HttpResponse:
        """POST: escalate this request to the next tier, with the reason typed on the page."""
        return self._post(
            request,
            approval_id,
            lambda approval: escalation.approval_escalate(
                user=request.user, reason=request.POST.get("reason", ""), approval_id=approval.pk
            ),
            "escalated",
        )

    def clarify_view(self, request: HttpRequest, approval_id: int) -> HttpResponse:
        """POST: ask the task's requester the question typed on the page."""
        return self._post(
            request,
            approval_id,
            lambda approval: clarification.clarification_ask(
                approval_id=approval.pk, user=request.user, question=request.POST.get("question", "")
            ),
            "question sent to the requester",
        )
