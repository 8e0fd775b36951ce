"""REST API for blueprints, tools, agents and tasks (/api/v1/, per tenant domain)."""

from __future__ import annotations

import math
import time
from typing import Any

from django import forms
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import selectors, services
from agents.blueprints import BLUEPRINTS, blueprint_describe
from agents.models import Agent, AgentConfigVersion, AutomationLevel, PrivilegeLevel, Step, Task, TaskEvent, Tool
from agents.states import FINAL
from config.api_schema import ERROR_COMPONENT
from config.serializers import StrictIn
from governance import access
from governance.access import Capability

MAX_WAIT_SECONDS = 30.0
VIEW, MANAGE_AGENTS, RUN, REVIEW = Capability.VIEW, Capability.MANAGE_AGENTS, Capability.RUN, Capability.REVIEW


class CapabilityPermission(BasePermission):
    """Views name the capability each action needs (``needs = {"create": MANAGE_AGENTS, ...}``);
    anything else needs VIEW. governance.access answers for the user's roles and, on an object,
    for their agent scope: an object out of their sight is 404, one in sight but out of reach 403."""

    message = "your role does not allow this"

    def _need(self, request: Request, view: Any) -> Capability:
        needs = getattr(view, "needs", {})
        return needs.get(getattr(view, "action", None) or (request.method or "").lower(), VIEW)

    def has_permission(self, request: Request, view: Any) -> bool:
        return access.user_may(request.user, self._need(request, view))

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if not access.user_may(request.user, VIEW, obj):
            raise NotFound(f"no {obj._meta.verbose_name} {obj.pk}")
        return access.user_may(request.user, self._need(request, view), obj)


class AgentScoped(GenericAPIView):
    """Lists and lookups hold only rows of the agents in the user's sight (governance.access)."""

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return access.scoped(self.request.user, VIEW, super().filter_queryset(queryset))


# ------------------------------------------------------------------------ fields, filters
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """A JSON object whose keys the service checks (against a blueprint's schema): the schema
    says object, not any JSON value; null is refused."""


@extend_schema_field({**services.MODEL_SETTINGS_SCHEMA, "additionalProperties": False})
class ModelSettingsField(serializers.JSONField):
    """An agent's model settings: a provider, or a connection of the operator's and one of its
    models (whether the tenant may use the connection is the service's to say)."""


# A slug with at least one character that is no digit: /agents/{id}/ takes an id or a name.
AGENT_NAME_PATTERN = r"^[-a-zA-Z0-9_]*[-a-zA-Z_][-a-zA-Z0-9_]*$"


@extend_schema_field({"type": "string", "pattern": AGENT_NAME_PATTERN, "maxLength": 100})
class AgentNameField(serializers.SlugField):
    """An agent's name as the schema states it (letters, digits, '-' or '_', not all digits)."""


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.NumberFilter):
    """A row id: 0 or an id of no row matches nothing; a value that is no integer is a 400."""

    field_class = forms.IntegerField


class StrictBooleanField(forms.Field):
    """true or false (1 or 0); empty is no filter; anything else is refused, not read as empty."""

    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value: Any) -> bool | None:
        if value in self.empty_values:
            return None
        if isinstance(value, bool):
            return value
        if str(value).lower() not in self.VALUES:
            raise forms.ValidationError("must be true or false")
        return self.VALUES[str(value).lower()]


class BooleanFilter(filters.BooleanFilter):
    """django-filter's reads any other value (``null``, ``yes``) as no filter; this one refuses it."""

    field_class = StrictBooleanField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


# ------------------------------------------------------------------ serializers (output)
class BlueprintOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    default_config = JSONObjectField(help_text="the config an agent of this blueprint starts from")
    config_schema = JSONObjectField(help_text="the JSON Schema an agent's config must match")
    input_schema = JSONObjectField(help_text="the JSON Schema a task's input must match")
    tools = serializers.ListField(child=serializers.CharField(), help_text="the tools granted by default")


class ToolOut(serializers.ModelSerializer):
    class Meta:
        model = Tool
        fields = ["name", "description", "privilege_level", "args_schema", "has_side_effect"]


class AgentOut(serializers.ModelSerializer):
    tools: serializers.SlugRelatedField[Tool] = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True
    )

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "description",
            "blueprint",
            "config",
            "model_settings",
            "privilege_ceiling",
            "automation_level",
            "status",
            "tools",
            "version",
            "created_at",
            "updated_at",
        ]


class VersionOut(serializers.ModelSerializer):
    class Meta:
        model = AgentConfigVersion
        fields = [
            "version",
            "config",
            "model_settings",
            "privilege_ceiling",
            "automation_level",
            "author_label",
            "reason",
            "diff",
            "created_at",
        ]


class StepOut(serializers.ModelSerializer):
    class Meta:
        model = Step
        fields = [
            "index",
            "action",
            "arguments",
            "result",
            "decision",
            "reasoning",
            "tokens",
            "cost_usd",
            "latency_ms",
            "created_at",
        ]


class EventOut(serializers.ModelSerializer):
    class Meta:
        model = TaskEvent
        fields = ["id", "task", "from_state", "to_state", "reason", "actor", "attempt", "created_at"]


class TaskOut(serializers.ModelSerializer):
    agent: serializers.SlugRelatedField[Agent] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = [
            "id",
            "url",
            "agent",
            "input",
            "output",
            "state",
            "priority",
            "attempt",
            "retry_count",
            "last_error",
            "correlation_id",
            "agent_version",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        ]

    def get_url(self, task: Task) -> str:
        request = self.context.get("request")
        path = f"/api/v1/tasks/{task.pk}/"
        return request.build_absolute_uri(path) if request else path


class TaskDetailOut(TaskOut):
    steps = StepOut(many=True, read_only=True)
    events = EventOut(many=True, read_only=True)

    class Meta(TaskOut.Meta):
        fields = [*TaskOut.Meta.fields, "steps", "events"]


# ------------------------------------------------------------------- serializers (input)
class AgentIn(StrictIn):
    name = AgentNameField(max_length=100)
    blueprint = serializers.ChoiceField(choices=sorted(BLUEPRINTS))
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    config = JSONObjectField(required=False, default=dict)
    model_settings = ModelSettingsField(required=False, default=None, help_text="default: the offline provider")
    privilege_ceiling = serializers.ChoiceField(
        choices=PrivilegeLevel.choices, required=False, default=PrivilegeLevel.EXECUTE_SAFE
    )
    automation_level = serializers.ChoiceField(
        choices=AutomationLevel.choices, required=False, default=AutomationLevel.SEMI_AUTO
    )
    tools = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=None)

    def validate_name(self, value: str) -> str:
        # /agents/{id}/ takes an id or a name: an all-digit name would address another agent.
        if value.isdigit():
            raise serializers.ValidationError("must not be all digits (it would read as an agent id)")
        return value


class AgentChangeIn(StrictIn):
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    config = JSONObjectField(required=False)
    model_settings = ModelSettingsField(required=False)
    privilege_ceiling = serializers.ChoiceField(choices=PrivilegeLevel.choices, required=False)
    automation_level = serializers.ChoiceField(choices=AutomationLevel.choices, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class RollbackIn(StrictIn):
    version = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class ToolsIn(StrictIn):
    tools = serializers.ListField(child=serializers.CharField(max_length=100), allow_empty=True)


class ExecuteIn(StrictIn):
    input = JSONObjectField(help_text="matches the input_schema of the agent's blueprint")
    priority = serializers.ChoiceField(choices=[1, 2, 3, 4], required=False, default=2)


class ReasonIn(StrictIn):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class OverrideIn(StrictIn):
    output = JSONObjectField()
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# ------------------------------------------------------------------------------- views
class BlueprintListApi(APIView):
    permission_classes = [CapabilityPermission]

    @extend_schema(responses={200: BlueprintOut(many=True)})
    def get(self, request: Request) -> Response:
        return Response([blueprint_describe(name) for name in sorted(BLUEPRINTS)])


class ToolViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [CapabilityPermission]
    serializer_class = ToolOut
    queryset = Tool.objects.all()
    lookup_field = "name"
    # Tool names may hold a dot (knowledge.search); still ASCII only.
    lookup_value_regex = r"[-A-Za-z0-9_.]+"


class AgentViewSet(AgentScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Agents; ``{id}`` is the agent's id or its name."""

    permission_classes = [CapabilityPermission]
    serializer_class = AgentOut
    queryset = Agent.objects.prefetch_related("tools")
    filterset_fields = ["blueprint", "status"]
    ordering_fields = ["name", "created_at"]
    needs = {
        "create": MANAGE_AGENTS,
        "partial_update": MANAGE_AGENTS,
        "update": MANAGE_AGENTS,
        "rollback": MANAGE_AGENTS,
        "tools": MANAGE_AGENTS,
        "pause": MANAGE_AGENTS,
        "resume": MANAGE_AGENTS,
        "execute": RUN,
    }

    def get_object(self) -> Agent:
        key = self.kwargs["pk"]
        is_id = key.isascii() and key.isdigit()
        agent = services.agent_get(agent_id=int(key)) if is_id else services.agent_get(name=key)
        self.check_object_permissions(self.request, agent)
        return agent

    @extend_schema(request=AgentIn, responses={201: AgentOut})
    def create(self, request: Request) -> Response:
        agent = services.agent_create(user=request.user, **_valid(AgentIn, request))
        return Response(AgentOut(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentChangeIn, responses={200: AgentOut})
    def partial_update(self, request: Request, pk: str) -> Response:
        data = _valid(AgentChangeIn, request)
        reason = data.pop("reason", "")
        agent = services.agent_update(agent_id=self.get_object().pk, user=request.user, reason=reason, **data)
        return Response(AgentOut(agent).data)

    @extend_schema(responses={200: VersionOut(many=True)})
    @action(detail=True, methods=["get"], filter_backends=[])
    def versions(self, request: Request, pk: str) -> Response:
        page = self.paginate_queryset(self.get_object().versions.all())
        return self.get_paginated_response(VersionOut(page, many=True).data)

    @extend_schema(request=RollbackIn, responses={200: AgentOut})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str) -> Response:
        data = _valid(RollbackIn, request)
        agent = services.agent_rollback(agent_id=self.get_object().pk, user=request.user, **data)
        return Response(AgentOut(agent).data)

    @extend_schema(request=ToolsIn, responses={200: AgentOut})
    @action(detail=True, methods=["put"])
    def tools(self, request: Request, pk: str) -> Response:
        agent = services.agent_tools_set(
            agent_id=self.get_object().pk, user=request.user, tools=_valid(ToolsIn, request)["tools"]
        )
        return Response(AgentOut(agent).data)

    @extend_schema(request=None, responses={200: AgentOut})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        agent = services.agent_status_set(agent_id=self.get_object().pk, status="paused", user=request.user)
        return Response(AgentOut(agent).data)

    @extend_schema(request=None, responses={200: AgentOut})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        agent = services.agent_status_set(agent_id=self.get_object().pk, status="enabled", user=request.user)
        return Response(AgentOut(agent).data)

    @extend_schema(
        request=ExecuteIn,
        responses={
            200: TaskDetailOut,
            202: TaskOut,
            422: OpenApiResponse(ERROR_REF, description="idempotency_key_reused: the key came with another body"),
        },
        parameters=[
            OpenApiParameter(
                "wait",
                {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
                description=f"seconds to wait for the result, at most {MAX_WAIT_SECONDS:g}",
            ),
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "pattern": r"^[\x20-\x7e]{1,200}$"},
                OpenApiParameter.HEADER,
                description=(
                    "1-200 printable ASCII characters; a retry with the same key within 24 h "
                    "returns the first task instead of creating another (422 "
                    "idempotency_key_reused if the body differs)"
                ),
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def execute(self, request: Request, pk: str) -> Response:
        """Run the agent on JSON input. With ``?wait=S`` the finished task comes back (200) if
        it ends within S seconds (at most 30); otherwise 202 with the task's URL. A request
        with an ``Idempotency-Key`` header that repeats one of the last 24 hours in this tenant
        answers with the task the first one created; the same key with another body is refused
        (422, code ``idempotency_key_reused``)."""
        try:
            wait = float(request.query_params.get("wait") or 0)
        except ValueError:
            wait = math.nan
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            return Response(
                {
                    "code": "invalid",
                    "detail": f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}",
                    "extra": {"fields": {"wait": f"a number from 0 to {MAX_WAIT_SECONDS:g}"}},
                },
                status=400,
            )
        data = _valid(ExecuteIn, request)
        task = services.task_submit(
            agent_id=self.get_object().pk,
            input=data["input"],
            priority=data["priority"],
            user=request.user,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        deadline = time.monotonic() + wait
        while wait and time.monotonic() < deadline:
            state = selectors.task_state_get(task_id=task.pk)
            if state in FINAL or state in ("escalated", "awaiting_approval"):
                detailed = selectors.task_with_history_get(task_id=task.pk)
                return Response(TaskDetailOut(detailed, context={"request": request}).data)
            time.sleep(0.02)
        response = Response(TaskOut(task, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/tasks/{task.pk}/"
        return response


class TaskFilter(filters.FilterSet):
    agent = filters.CharFilter(field_name="agent__name")
    state = filters.MultipleChoiceFilter(choices=Task._meta.get_field("state").choices)

    class Meta:
        model = Task
        fields = ["state", "agent", "priority"]


class TaskViewSet(AgentScoped, viewsets.ReadOnlyModelViewSet):
    permission_classes = [CapabilityPermission]
    filterset_class = TaskFilter
    ordering_fields = ["created_at", "priority", "updated_at"]
    needs = {"cancel": RUN, "escalate": REVIEW, "override": REVIEW, "retry": RUN}

    def get_queryset(self) -> QuerySet[Task]:
        query = Task.objects.select_related("agent")
        if self.action == "retrieve":
            query = query.prefetch_related("steps", "events")
        elif self.action == "list":  # of the agent, the list shows the name only
            query = query.defer("context", "agent__config", "agent__model_settings", "agent__description")
        return query

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return TaskDetailOut if self.action == "retrieve" else TaskOut

    def _done(self, task: Task) -> Response:
        task = self.get_queryset().prefetch_related("steps", "events").get(pk=task.pk)
        return Response(TaskDetailOut(task, context={"request": self.request}).data)

    @extend_schema(request=ReasonIn, responses={200: TaskDetailOut})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        return self._done(
            services.task_cancel(task_id=self.get_object().pk, user=request.user, **_valid(ReasonIn, request))
        )

    @extend_schema(request=ReasonIn, responses={200: TaskDetailOut})
    @action(detail=True, methods=["post"])
    def escalate(self, request: Request, pk: str) -> Response:
        return self._done(
            services.task_escalate(task_id=self.get_object().pk, user=request.user, **_valid(ReasonIn, request))
        )

    @extend_schema(request=OverrideIn, responses={200: TaskDetailOut})
    @action(detail=True, methods=["post"])
    def override(self, request: Request, pk: str) -> Response:
        return self._done(
            services.task_override(task_id=self.get_object().pk, user=request.user, **_valid(OverrideIn, request))
        )

    @extend_schema(request=None, responses={200: TaskDetailOut})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        return self._done(services.task_retry(task_id=self.get_object().pk, user=request.user))

    @extend_schema(responses={200: EventOut(many=True)})
    @action(detail=True, methods=["get"], filter_backends=[])
    def events(self, request: Request, pk: str) -> Response:
        page = self.paginate_queryset(TaskEvent.objects.filter(task=self.get_object()).order_by("id"))
        return self.get_paginated_response(EventOut(page, many=True).data)


class EventFilter(filters.FilterSet):
    task = IdFilter(field_name="task_id")

    class Meta:
        model = TaskEvent
        fields = ["task", "to_state"]


class EventViewSet(AgentScoped, viewsets.ReadOnlyModelViewSet):
    """Every task transition, newest first (the event store)."""

    permission_classes = [CapabilityPermission]
    serializer_class = EventOut
    queryset = TaskEvent.objects.order_by("-id")
    filterset_class = EventFilter
