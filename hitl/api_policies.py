"""REST API for approval policies (/api/v1/hitl/policies/): read by every role, written by
admins through hitl.policies (every change audited). A policy's rules change only by a new
version (POST …/versions/); versions are never edited or deleted, and a policy is retired by
disabling it."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.api import CapabilityPermission
from agents.models import PrivilegeLevel
from config.serializers import NO_NUL, TEXT_PATTERN
from hitl import policies
from hitl.api_fields import JSONIn, JSONValueField
from hitl.models import Policy, PolicyGate, PolicyTerminal, PolicyVersion
from tenants.tiers import Tier


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


PRIORITY_NAMES = tuple(policies.PRIORITY_BY_NAME)  # low … critical

# The shapes hitl.policies.policy_content_validate takes, for the schema; the service checks them
# (and what no schema says: privilege_min not above privilege_max, gate none and auto_approve
# only for low levels).
_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN}
_NAMES: dict[str, Any] = {"type": "array", "items": _NAME, "nullable": True}
_LEVEL: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": int(PrivilegeLevel.SUPER_ADMIN), "nullable": True}
_THRESHOLD: dict[str, Any] = {
    "type": "object",
    "properties": {
        "argument": _NAME,
        **{op: {"type": "number"} for op in policies.OPERATORS},
    },
    "required": ["argument"],
    "minProperties": 2,
    "additionalProperties": False,
}


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            "agents": _NAMES,
            "tools": _NAMES,
            "privilege_min": _LEVEL,
            "privilege_max": _LEVEL,
            "tiers": {**_NAMES, "items": {"type": "string", "enum": list(Tier.values)}},
            "arguments": {"type": "array", "items": _THRESHOLD, "nullable": True},
        },
        "additionalProperties": False,
    }
)
class ConditionsField(JSONValueField):
    """Which calls the policy matches."""


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": policies.MAX_QUORUM})
class QuorumField(JSONValueField):
    """How many distinct approvers a request needs."""


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            name: {"type": "integer", "minimum": 1, "maximum": policies.MAX_SLA_MINUTES}
            for name in policies.PRIORITY_BY_NAME
        },
        "additionalProperties": False,
    }
)
class SlaField(JSONValueField):
    """Minutes to decide, by priority."""


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            "reminder_share": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "exclusiveMinimum": True,
                "exclusiveMaximum": True,
            },
            "steps": {
                "type": "array",
                "maxItems": policies.MAX_LADDER_STEPS,
                "items": {
                    "type": "object",
                    "properties": {
                        "role": {"type": "string", "enum": list(policies.APPROVER_ROLES)},
                        "raise_priority": {"type": "boolean"},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    }
)
class LadderField(JSONValueField):
    """What happens as the deadline passes: reminders, then the tiers a request escalates to."""


class ContentIn(JSONIn):
    """A version's content; hitl.policies checks what each field means."""

    conditions = ConditionsField(
        required=False,
        help_text='{"agents": [...], "tools": [...], "privilege_min": 1, "privilege_max": 5, '
        '"tiers": [...], "arguments": [{"argument": "amount", "gt": 100}]}; empty matches every call',
    )
    gate = serializers.ChoiceField(choices=PolicyGate.choices, required=False, help_text="default: approval")
    approver_role = serializers.ChoiceField(
        choices=policies.APPROVER_ROLES, required=False, help_text="default: reviewer"
    )
    quorum = QuorumField(required=False, help_text="distinct approvers needed (default 1)")
    priority = serializers.ChoiceField(
        choices=PRIORITY_NAMES, required=False, allow_null=True, help_text="null: the task's"
    )
    sla_minutes = SlaField(required=False, help_text='minutes by priority, e.g. {"high": 30}')
    ladder = LadderField(
        required=False, help_text='{"reminder_share": 0.5, "steps": [{"role": "admin", "raise_priority": true}]}'
    )
    terminal = serializers.ChoiceField(choices=PolicyTerminal.choices, required=False, help_text="default: expire")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="", validators=[NO_NUL])


ORDER_MAX = 1_000_000


class PolicyIn(ContentIn):
    name = serializers.RegexField(r"^[-\w]+$", max_length=100, help_text="letters, digits, - and _")
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=500, default="", validators=[NO_NUL]
    )
    enabled = serializers.BooleanField(required=False, default=True)
    shadow = serializers.BooleanField(required=False, default=False)
    order = serializers.IntegerField(required=False, default=100, min_value=0, max_value=ORDER_MAX)


class PolicyChangeIn(JSONIn):
    description = serializers.CharField(required=False, allow_blank=True, max_length=500, validators=[NO_NUL])
    enabled = serializers.BooleanField(required=False)
    shadow = serializers.BooleanField(required=False)
    order = serializers.IntegerField(required=False, min_value=0, max_value=ORDER_MAX)


def _valid(form: type[ContentIn], raw: Any) -> dict[str, Any]:
    """The body, read by ``form``; a field it does not know is refused first, by name, as the
    service refuses an unknown content field (policy_invalid)."""
    data = form(data=raw)
    unknown = sorted(set(raw) - set(data.fields)) if isinstance(raw, dict) else []
    if unknown:
        raise policies.PolicyInvalid(
            f"unknown fields: {', '.join(unknown)}", fields={name: "unknown field" for name in unknown}
        )
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


def _content(data: dict[str, Any]) -> dict[str, Any]:
    """The content fields the client sent (absent ones take their defaults)."""
    return {key: data[key] for key in policies.CONTENT_FIELDS if key in data}


def _id(pk: str) -> int:
    return int(pk) if pk.isascii() and pk.isdigit() and len(pk) <= 18 else -1


class PolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Approval policies by precedence (the first enabled, non-shadow match decides)."""

    permission_classes = [CapabilityPermission]
    serializer_class = PolicyOut
    lookup_value_regex = "[0-9]+"
    needs = {
        "create": policies.POLICY_WRITE,
        "partial_update": policies.POLICY_WRITE,
        "version_create": policies.POLICY_WRITE,
    }

    def get_queryset(self) -> QuerySet[Policy]:
        return Policy.objects.select_related("current__created_by").order_by("order", "id")

    @extend_schema(request=PolicyIn, responses={201: PolicyOut})
    def create(self, request: Request) -> Response:
        values = _valid(PolicyIn, request.data)
        policy = policies.policy_create(
            name=values["name"],
            description=values["description"],
            enabled=values["enabled"],
            shadow=values["shadow"],
            order=values["order"],
            reason=values["reason"],
            content=_content(values),
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
    @action(detail=True, methods=["get"], filter_backends=[])  # newest first, no filters
    def versions(self, request: Request, pk: str) -> Response:
        """Every version of the policy, newest first (never edited)."""
        policy = self.get_object()
        page = self.paginate_queryset(policy.versions.select_related("created_by").order_by("-version"))
        return self.get_paginated_response(PolicyVersionOut(page, many=True).data)

    @extend_schema(request=ContentIn, responses={201: PolicyVersionOut})
    @versions.mapping.post
    def version_create(self, request: Request, pk: str) -> Response:
        """A new version, in force for the requests opened from now on."""
        values = _valid(ContentIn, request.data)
        version = policies.policy_version_create(
            policy_id=_id(pk),
            content=_content(values),
            reason=values["reason"],
            user=request.user,
        )
        return Response(PolicyVersionOut(version).data, status=status.HTTP_201_CREATED)
