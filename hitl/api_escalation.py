"""The API of manual escalation and clarification (/api/v1/hitl/): actions of the approval
viewset (hitl.api.ApprovalViewSet), which says what each one needs (``review`` to escalate and
ask; ``view`` to answer and list questions, the service then admits only the requester or an
admin)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.serializers import NOT_BLANK
from hitl import clarification, escalation
from hitl.api_fields import JSONIn
from hitl.models import Clarification
from hitl.policies import APPROVER_ROLES


class EscalateIn(JSONIn):
    approval = serializers.IntegerField(required=False, min_value=1, help_text="the request to escalate")
    task = serializers.IntegerField(required=False, min_value=1, help_text="or the task waiting for a decision")
    reason = serializers.CharField(
        max_length=escalation.REASON_MAX, validators=[NOT_BLANK], help_text="why, for the history and the audit"
    )
    target = serializers.ChoiceField(
        choices=APPROVER_ROLES,
        required=False,
        allow_blank=True,
        help_text="a tier of the ladder above the request's current one (default: the next tier)",
    )


class EscalateInSchema(OpenApiSerializerExtension):
    """EscalateIn as the service reads it: exactly one of ``approval`` and ``task``."""

    target_class = EscalateIn

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target_class, direction, bypass_extensions=True)
        return {**schema, "oneOf": [{"required": ["approval"]}, {"required": ["task"]}]}


class ClarifyIn(JSONIn):
    question = serializers.CharField(max_length=clarification.TEXT_MAX, validators=[NOT_BLANK])


class AnswerIn(JSONIn):
    answer = serializers.CharField(max_length=clarification.TEXT_MAX, validators=[NOT_BLANK])


class ClarificationsIn(serializers.Serializer):
    mine = serializers.BooleanField(required=False, default=False, help_text="only questions on my tasks")
    state = serializers.ChoiceField(choices=["open", "answered", "all"], required=False, default="open")


class ClarificationOut(serializers.ModelSerializer):
    asked_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    answered_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    task = serializers.IntegerField(source="approval.task_id", read_only=True)
    agent = serializers.CharField(source="approval.task.agent.name", read_only=True)
    tool = serializers.CharField(source="approval.tool", read_only=True)

    class Meta:
        model = Clarification
        fields = [
            "id",
            "approval",
            "task",
            "agent",
            "tool",
            "question",
            "asked_by",
            "asked_at",
            "answer",
            "answered_by",
            "answered_at",
        ]


def clarifications_of(approval_id: int) -> list[dict[str, Any]]:
    """The questions of one request, oldest first, for its detail."""
    rows = Clarification.objects.filter(approval_id=approval_id).select_related(
        "approval__task__agent", "asked_by", "answered_by"
    )
    return list(ClarificationOut(rows.order_by("id"), many=True).data)


_STATES: dict[str, bool | None] = {"open": False, "answered": True, "all": None}


class EscalationActions(viewsets.GenericViewSet):
    """Mixed into the approval viewset; ``_one`` (the request's detail) and ``_id`` come from it."""

    def _one(self, approval: Any) -> Response:
        raise NotImplementedError

    @staticmethod
    def _pk(pk: str) -> int:
        return int(pk) if pk.isascii() and pk.isdigit() and len(pk) <= 18 else -1

    @extend_schema(request=EscalateIn)  # the answer (the request's detail): hitl.api
    @action(detail=False, methods=["post"])
    def escalate(self, request: Request) -> Response:
        """Escalate an open request (``approval``) or the one a waiting ``task`` is stopped at
        to the next tier now, with a ``reason``: priority raised, next tier's role, reassigned."""
        data = EscalateIn(data=request.data)
        data.is_valid(raise_exception=True)
        escalated = escalation.approval_escalate(
            user=request.user,
            reason=data.validated_data["reason"],
            approval_id=data.validated_data.get("approval"),
            task_id=data.validated_data.get("task"),
            target=data.validated_data.get("target") or None,
        )
        return self._one(escalated)

    @extend_schema(request=ClarifyIn, responses={201: ClarificationOut})
    @action(detail=True, methods=["post"])
    def clarify(self, request: Request, pk: str) -> Response:
        """Ask the task's requester a question: the request waits for the answer, its SLA clock
        stopped."""
        data = ClarifyIn(data=request.data)
        data.is_valid(raise_exception=True)
        asked = clarification.clarification_ask(
            approval_id=self._pk(pk), user=request.user, question=data.validated_data["question"]
        )
        return Response(ClarificationOut(asked).data, status=201)

    @extend_schema(request=AnswerIn, responses={200: ClarificationOut})
    @action(detail=True, methods=["post"])
    def answer(self, request: Request, pk: str) -> Response:
        """The requester (or an admin) answers the open question: the request goes back to the
        reviewer's queue and its SLA clock restarts."""
        data = AnswerIn(data=request.data)
        data.is_valid(raise_exception=True)
        answered = clarification.clarification_answer(
            approval_id=self._pk(pk), user=request.user, answer=data.validated_data["answer"]
        )
        return Response(ClarificationOut(answered).data)

    @extend_schema(parameters=[ClarificationsIn], responses={200: ClarificationOut(many=True)})
    @action(detail=False, methods=["get"], filter_backends=[])  # ClarificationsIn's filters, its own order
    def clarifications(self, request: Request) -> Response:
        """Questions on the requests in sight, newest first: ``state`` open (the default),
        answered or all; ``mine=1`` only those on my tasks (what waits for my answer)."""
        params = ClarificationsIn(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        query = clarification.clarifications_for(
            user=request.user, mine=params.validated_data["mine"], answered=_STATES[params.validated_data["state"]]
        )
        page = self.paginate_queryset(query)
        return self.get_paginated_response(ClarificationOut(page, many=True).data)
