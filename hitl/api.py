"""REST API for approval requests (/api/v1/hitl/)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.api import REVIEW, AgentScoped, CapabilityPermission
from governance import access
from governance.access import Capability
from hitl import assignment, selectors, services
from hitl.api_escalation import EscalationActions, clarifications_of
from hitl.models import OPEN_STATUSES, ApprovalPriority, ApprovalRequest, ApprovalStatus


class ApprovalOut(serializers.ModelSerializer):
    decided_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    assignee: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    agent = serializers.CharField(source="task.agent.name", read_only=True)
    priority = serializers.CharField(source="get_priority_display", read_only=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "task",
            "agent",
            "step_index",
            "tool",
            "arguments",
            "action_hash",
            "privilege_level",
            "reasoning",
            "required_role",
            "status",
            "decided_by",
            "decided_at",
            "decision_note",
            "created_at",
            "priority",
            "due_at",
            "assignee",
            "assigned_at",
            "escalation_level",
            "evidence_hash",
            "original_arguments",
            "original_hash",
            "policy_version",
            "quorum",
        ]


class ApprovalDetailOut(ApprovalOut):
    history = serializers.SerializerMethodField()
    quorum_progress = serializers.SerializerMethodField(help_text="approvals so far of the quorum, and every vote")
    clarifications = serializers.SerializerMethodField()

    class Meta(ApprovalOut.Meta):
        fields = [*ApprovalOut.Meta.fields, "evidence", "history", "clarifications", "quorum_progress"]

    def get_clarifications(self, obj: ApprovalRequest) -> list[dict[str, Any]]:
        return clarifications_of(obj.pk)

    def get_quorum_progress(self, obj: ApprovalRequest) -> dict[str, Any]:
        return services.quorum_progress(obj)

    def get_history(self, obj: ApprovalRequest) -> list[dict[str, Any]]:
        return [
            {
                "kind": event.kind,
                "actor": event.actor.get_username() if event.actor else None,
                "data": event.data,
                "at": event.created_at.isoformat(),
            }
            for event in obj.history.select_related("actor")
        ]


class QueueIn(serializers.Serializer):
    status = serializers.MultipleChoiceField(choices=ApprovalStatus.choices, required=False)
    priority = serializers.ChoiceField(choices=[label for _, label in ApprovalPriority.choices], required=False)
    agent = serializers.CharField(required=False, max_length=100)
    assignee = serializers.CharField(required=False, max_length=150, help_text="me, none (unassigned) or a username")


class RespondIn(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=[services.APPROVE, services.REJECT, services.EDIT])
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")
    action_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$", required=False, help_text="the hash of the action you reviewed (approve and edit)"
    )
    arguments = serializers.DictField(required=False, help_text="edit: the arguments to run instead")


class ReassignIn(serializers.Serializer):
    user = serializers.CharField(max_length=150, help_text="the username of the new assignee")


class DecisionIn(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")
    action_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="the hash of the action you reviewed: required to approve "
        "(refused if the action changed since); rejecting needs none",
    )


def _id(pk: str) -> int:
    return int(pk) if pk.isascii() and pk.isdigit() else -1


class ApprovalViewSet(AgentScoped, EscalationActions, viewsets.ReadOnlyModelViewSet):
    """Approval requests of the agents in the user's sight. The decider is always the
    authenticated user, who may not be the task's requester or the agent's latest config author."""

    permission_classes = [CapabilityPermission]
    serializer_class = ApprovalOut
    filterset_fields = ["status", "tool", "task"]
    ordering_fields = ["created_at"]
    needs = {
        "approve": REVIEW,
        "reject": REVIEW,
        "respond": REVIEW,
        "claim": REVIEW,
        "release": REVIEW,
        "reassign": REVIEW,
        "escalate": REVIEW,
        "clarify": REVIEW,
    }

    def get_queryset(self) -> QuerySet[ApprovalRequest]:
        return ApprovalRequest.objects.select_related("task__agent", "decided_by", "assignee")

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return ApprovalDetailOut if self.action == "retrieve" else ApprovalOut

    def _one(self, approval: ApprovalRequest) -> Response:
        return Response(ApprovalDetailOut(self.get_queryset().get(pk=approval.pk)).data)

    @extend_schema(parameters=[QueueIn], responses={200: ApprovalOut(many=True)})
    @action(detail=False, methods=["get"])
    def queue(self, request: Request) -> Response:
        """Open requests in sight (or those of ``status``), by priority then deadline."""
        params = QueueIn(data={**request.query_params.dict(), "status": request.query_params.getlist("status")})
        params.is_valid(raise_exception=True)
        data = params.validated_data
        priority = {label: value for value, label in ApprovalPriority.choices}.get(data.get("priority", ""))
        queue = selectors.approval_queue_for(
            user=request.user,
            statuses=tuple(data.get("status") or OPEN_STATUSES),
            priority=priority,
            agent=data.get("agent"),
            assignee=data.get("assignee"),
        )
        page = self.paginate_queryset(queue)
        return self.get_paginated_response(ApprovalOut(page, many=True).data)

    @extend_schema(request=RespondIn, responses={200: ApprovalDetailOut})
    @action(detail=True, methods=["post"])
    def respond(self, request: Request, pk: str) -> Response:
        """Approve, reject (a reason is required) or edit (the arguments to run instead)."""
        data = RespondIn(data=request.data)
        data.is_valid(raise_exception=True)
        decided = services.approval_decide(
            approval_id=_id(pk),
            user=request.user,
            verdict=data.validated_data["verdict"],
            note=data.validated_data["reason"],
            seen_hash=data.validated_data.get("action_hash"),
            arguments=data.validated_data.get("arguments"),
            reason_required=True,
        )
        return self._one(decided)  # with the quorum's progress: an approval may leave it open

    @extend_schema(request=None, responses={200: ApprovalDetailOut})
    @action(detail=True, methods=["post"])
    def claim(self, request: Request, pk: str) -> Response:
        return self._one(assignment.approval_claim(approval_id=_id(pk), user=request.user))

    @extend_schema(request=None, responses={200: ApprovalDetailOut})
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        return self._one(assignment.approval_release(approval_id=_id(pk), user=request.user))

    @extend_schema(request=ReassignIn, responses={200: ApprovalDetailOut})
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str) -> Response:
        data = ReassignIn(data=request.data)
        data.is_valid(raise_exception=True)
        target = User.objects.filter(username=data.validated_data["user"]).values_list("pk", flat=True).first()
        return self._one(assignment.approval_reassign(approval_id=_id(pk), user=request.user, to_user_id=target or -1))

    @extend_schema(responses={200: ApprovalOut(many=True)})
    @action(detail=False, methods=["get"])
    def pending(self, request: Request) -> Response:
        pending = self.get_queryset().filter(status__in=OPEN_STATUSES).order_by("created_at")
        page = self.paginate_queryset(access.scoped(request.user, Capability.VIEW, pending))
        return self.get_paginated_response(ApprovalOut(page, many=True).data)

    def _decide(self, request: Request, pk: str, verdict: str) -> Response:
        data = DecisionIn(data=request.data)
        data.is_valid(raise_exception=True)
        decided = services.approval_decide(
            approval_id=_id(pk),
            user=request.user,
            verdict=verdict,
            note=data.validated_data["note"],
            seen_hash=data.validated_data.get("action_hash"),
        )
        return self._one(decided)  # with the quorum's progress: an approval may leave it open

    @extend_schema(request=DecisionIn, responses={200: ApprovalDetailOut})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._decide(request, pk, services.APPROVE)

    @extend_schema(request=DecisionIn, responses={200: ApprovalDetailOut})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        return self._decide(request, pk, services.REJECT)
