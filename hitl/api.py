"""REST API for approval requests (/api/v1/hitl/)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.api import REVIEW, AgentScoped, CapabilityPermission
from governance import access
from governance.access import Capability
from hitl import services
from hitl.models import ApprovalRequest, ApprovalStatus


class ApprovalOut(serializers.ModelSerializer):
    decided_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    agent = serializers.CharField(source="task.agent.name", read_only=True)

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
        ]


class DecisionIn(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")
    action_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="the hash of the action you reviewed: required to approve "
        "(refused if the action changed since); rejecting needs none",
    )


class ApprovalViewSet(AgentScoped, viewsets.ReadOnlyModelViewSet):
    """Approval requests of the agents in the user's sight. The decider is always the
    authenticated user, who may not be the task's requester or the agent's latest config author."""

    permission_classes = [CapabilityPermission]
    serializer_class = ApprovalOut
    filterset_fields = ["status", "tool", "task"]
    ordering_fields = ["created_at"]
    needs = {"approve": REVIEW, "reject": REVIEW}

    def get_queryset(self) -> QuerySet[ApprovalRequest]:
        return ApprovalRequest.objects.select_related("task__agent", "decided_by")

    @extend_schema(responses={200: ApprovalOut(many=True)})
    @action(detail=False, methods=["get"])
    def pending(self, request: Request) -> Response:
        pending = self.get_queryset().filter(status=ApprovalStatus.PENDING).order_by("created_at")
        page = self.paginate_queryset(access.scoped(request.user, Capability.VIEW, pending))
        return self.get_paginated_response(ApprovalOut(page, many=True).data)

    def _decide(self, request: Request, pk: str, verdict: str) -> Response:
        data = DecisionIn(data=request.data)
        data.is_valid(raise_exception=True)
        approval_id = int(pk) if pk.isascii() and pk.isdigit() else -1
        decided = services.approval_decide(
            approval_id=approval_id,
            user=request.user,
            verdict=verdict,
            note=data.validated_data["note"],
            seen_hash=data.validated_data.get("action_hash"),
        )
        return Response(ApprovalOut(self.get_queryset().get(pk=decided.pk)).data)

    @extend_schema(request=DecisionIn, responses={200: ApprovalOut})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._decide(request, pk, services.APPROVE)

    @extend_schema(request=DecisionIn, responses={200: ApprovalOut})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        return self._decide(request, pk, services.REJECT)
