"""REST API for approval policies (/api/v1/hitl/policies/): read by every role, written by
admins through hitl.policies (every change audited). A policy's rules change only by a new
version (POST …/versions/); versions are never edited or deleted, and a policy is retired by
disabling it."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.api import CapabilityPermission
from hitl import policies
from hitl.models import Policy, PolicyVersion


class PolicyVersionOut(serializers.ModelSerializer):
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    priority = serializers.SerializerMethodField()

    class Meta:
        model = PolicyVersion
        fields = [
            "id",
            "version",
            "conditions",
            "gate",
            "approver_role",
            "quorum",
            "priority",
            "sla_minutes",
            "ladder",
            "terminal",
            "reason",
            "created_by",
            "created_at",
        ]

    def get_priority(self, obj: PolicyVersion) -> str | None:
        return policies.version_content(obj)["priority"]


class PolicyOut(serializers.ModelSerializer):
    current = PolicyVersionOut(read_only=True)

    class Meta:
        model = Policy
        fields = ["id", "name", "description", "enabled", "shadow", "order", "current", "created_at", "updated_at"]


class ContentIn(serializers.Serializer):
    """A version's content; hitl.policies checks what each field means."""

    conditions = serializers.JSONField(
        required=False,
        help_text='{"agents": [...], "tools": [...], "privilege_min": 1, "privilege_max": 5, '
        '"tiers": [...], "arguments": [{"argument": "amount", "gt": 100}]}; empty matches every call',
    )
    gate = serializers.CharField(required=False, help_text="approval (default) or none")
    approver_role = serializers.CharField(required=False, help_text="reviewer (default) or admin")
    quorum = serializers.JSONField(required=False, help_text="distinct approvers needed (default 1)")
    priority = serializers.CharField(required=False, allow_null=True, help_text="critical, high, medium, low or null")
    sla_minutes = serializers.JSONField(required=False, help_text='minutes by priority, e.g. {"high": 30}')
    ladder = serializers.JSONField(
        required=False, help_text='{"reminder_share": 0.5, "steps": [{"role": "admin", "raise_priority": true}]}'
    )
    terminal = serializers.CharField(required=False, help_text="expire (default), auto_reject, auto_approve")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class PolicyIn(ContentIn):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    enabled = serializers.BooleanField(required=False, default=True)
    shadow = serializers.BooleanField(required=False, default=False)
    order = serializers.IntegerField(required=False, default=100)


class PolicyChangeIn(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    enabled = serializers.BooleanField(required=False)
    shadow = serializers.BooleanField(required=False)
    order = serializers.IntegerField(required=False)


def _content(data: dict[str, Any], raw: Any, form: serializers.Serializer) -> dict[str, Any]:
    """The content fields the client sent (absent ones take their defaults); a field ``form``
    does not know is refused by name rather than ignored."""
    unknown = sorted(set(raw) - set(form.fields)) if isinstance(raw, dict) else []
    if unknown:
        raise policies.PolicyInvalid(
            f"unknown fields: {', '.join(unknown)}", fields={name: "unknown field" for name in unknown}
        )
    return {key: data[key] for key in policies.CONTENT_FIELDS if key in data}


def _id(pk: str) -> int:
    return int(pk) if pk.isascii() and pk.isdigit() else -1


class PolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Approval policies by precedence (the first enabled, non-shadow match decides)."""

    permission_classes = [CapabilityPermission]
    serializer_class = PolicyOut
    needs = {
        "create": policies.POLICY_WRITE,
        "partial_update": policies.POLICY_WRITE,
        "version_create": policies.POLICY_WRITE,
    }

    def get_queryset(self) -> QuerySet[Policy]:
        return Policy.objects.select_related("current__created_by").order_by("order", "id")

    @extend_schema(request=PolicyIn, responses={201: PolicyOut})
    def create(self, request: Request) -> Response:
        data = PolicyIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        policy = policies.policy_create(
            name=values["name"],
            description=values["description"],
            enabled=values["enabled"],
            shadow=values["shadow"],
            order=values["order"],
            reason=values["reason"],
            content=_content(values, request.data, data),
            user=request.user,
        )
        return Response(PolicyOut(self.get_queryset().get(pk=policy.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PolicyChangeIn, responses={200: PolicyOut})
    def partial_update(self, request: Request, pk: str) -> Response:
        """Enable, disable, shadow or reorder a policy; its rules change by a new version."""
        content = sorted(set(request.data) & set(policies.CONTENT_FIELDS)) if isinstance(request.data, dict) else []
        if content:
            raise policies.PolicyInvalid(
                "a policy's rules change by a new version: POST them to its versions/",
                fields={name: "change it in a new version" for name in content},
            )
        data = PolicyChangeIn(data=request.data)
        data.is_valid(raise_exception=True)
        policy = policies.policy_update(policy_id=_id(pk), user=request.user, **data.validated_data)
        return Response(PolicyOut(self.get_queryset().get(pk=policy.pk)).data)

    @extend_schema(responses={200: PolicyVersionOut(many=True)})
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str) -> Response:
        """Every version of the policy, newest first (never edited)."""
        policy = self.get_object()
        page = self.paginate_queryset(policy.versions.select_related("created_by").order_by("-version"))
        return self.get_paginated_response(PolicyVersionOut(page, many=True).data)

    @extend_schema(request=ContentIn, responses={201: PolicyVersionOut})
    @versions.mapping.post
    def version_create(self, request: Request, pk: str) -> Response:
        """A new version, in force for the requests opened from now on."""
        data = ContentIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = policies.policy_version_create(
            policy_id=_id(pk),
            content=_content(data.validated_data, request.data, data),
            reason=data.validated_data["reason"],
            user=request.user,
        )
        return Response(PolicyVersionOut(version).data, status=status.HTTP_201_CREATED)
