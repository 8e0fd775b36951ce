"""REST API for approval requests (/api/v1/hitl/)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.api import REVIEW, AgentScoped, CapabilityPermission, IdFilter
from config.serializers import NO_NUL, NOT_BLANK
from hitl import assignment, selectors, services
from hitl.api_escalation import EscalationActions, clarifications_of
from hitl.api_fields import JSONDictField, JSONIn, TextFilter
from hitl.models import OPEN_STATUSES, ApprovalPriority, ApprovalRequest, ApprovalStatus

_PRIORITY_LABELS = {int(value): str(label) for value, label in ApprovalPriority.choices}


@extend_schema_field({"type": "string", "enum": list(_PRIORITY_LABELS.values())})
class PriorityLabelField(serializers.Field):
    """The priority's name (``get_priority_display`` gives the same, at a cost per row that
    shows in a page of 50)."""

    def to_representation(self, value: int) -> str:
        return _PRIORITY_LABELS.get(value, str(value))


class ApprovalOut(serializers.ModelSerializer):
    decided_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="who decided (null while open)"
    )
    assignee: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="who holds the request (null: unassigned)"
    )
    agent = serializers.CharField(source="task.agent.name", read_only=True)
    priority = PriorityLabelField(read_only=True)

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
    agent = serializers.CharField(required=False, max_length=100, validators=[NOT_BLANK])
    assignee = serializers.CharField(
        required=False, max_length=150, validators=[NOT_BLANK], help_text="me, none (unassigned) or a username"
    )


class RespondIn(JSONIn):
    verdict = serializers.ChoiceField(choices=[services.APPROVE, services.REJECT, services.EDIT])
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="", validators=[NO_NUL])
    action_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$", required=False, help_text="the hash of the action you reviewed (approve and edit)"
    )
    arguments = JSONDictField(required=False, help_text="edit: the arguments to run instead")


class ReassignIn(JSONIn):
    user = serializers.CharField(max_length=150, validators=[NOT_BLANK], help_text="the username of the new assignee")


class DecisionIn(JSONIn):
    note = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="", validators=[NO_NUL])
    action_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="the hash of the action you reviewed: required to approve "
        "(refused if the action changed since); rejecting needs none",
    )


class ApproveIn(DecisionIn):
    """The body of approve as documented: DecisionIn's fields with the hash required. The body is
    read by DecisionIn; the service refuses an approval without a hash (approval_hash_required)."""

    action_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$", help_text="the hash of the action you reviewed (refused if the action changed since)"
    )


class ApprovalFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=ApprovalStatus.choices)
    tool = TextFilter()
    task = IdFilter(field_name="task_id")

    class Meta:
        model = ApprovalRequest
        fields = ["status", "tool", "task"]


def _id(pk: str) -> int:
    return int(pk) if pk.isascii() and pk.isdigit() and len(pk) <= 18 else -1


@extend_schema_view(escalate=extend_schema(responses={200: ApprovalDetailOut}))
class ApprovalViewSet(AgentScoped, EscalationActions, viewsets.ReadOnlyModelViewSet):
    """Approval requests of the agents in the user's sight. The decider is always the
    authenticated user, who may not be the task's requester or the agent's latest config author."""

    permission_classes = [CapabilityPermission]
    serializer_class = ApprovalOut
    filterset_class = ApprovalFilter
    lookup_value_regex = "[0-9]+"  # an id: /hitl/policies/… is never an approval's address
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
        query = ApprovalRequest.objects.select_related("task__agent", "decided_by", "assignee")
        if self.action == "list":  # of the task and its agent, the list shows the agent's name only
            query = query.defer(
                "evidence",
                "task__input",
                "task__output",
                "task__context",
                "task__agent__config",
                "task__agent__model_settings",
                "task__agent__description",
            )
        return query

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return ApprovalDetailOut if self.action == "retrieve" else ApprovalOut

    def _one(self, approval: ApprovalRequest) -> Response:
        return Response(ApprovalDetailOut(self.get_queryset().get(pk=approval.pk)).data)

    @extend_schema(parameters=[QueueIn], responses={200: ApprovalOut(many=True)})
    @action(detail=False, methods=["get"], filter_backends=[])  # QueueIn's filters, its own order
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
        # The request as decided, from memory (its row is committed as it stands here), with
        # the quorum's progress: an approval may leave it open.
        return Response(ApprovalDetailOut(decided).data)

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
        """Open requests in sight, oldest first; the list's filters and ordering apply."""
        pending = self.get_queryset().filter(status__in=OPEN_STATUSES).order_by("created_at")
        page = self.paginate_queryset(self.filter_queryset(pending))  # scoped to the user's sight
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
        # The request as decided, from memory (its row is committed as it stands here), with
        # the quorum's progress: an approval may leave it open.
        return Response(ApprovalDetailOut(decided).data)

    @extend_schema(request=ApproveIn, responses={200: ApprovalDetailOut})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._decide(request, pk, services.APPROVE)

    @extend_schema(request=DecisionIn, responses={200: ApprovalDetailOut})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        return self._decide(request, pk, services.REJECT)
