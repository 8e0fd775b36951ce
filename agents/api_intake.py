"""REST API of the event intake: the signed ingest endpoint the monitoring systems post to, and
the event sources the tenant's admins and agent managers declare (agents.intake)."""

from __future__ import annotations

from typing import Any, cast

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from agents import intake
from agents.api import MANAGE_AGENTS, AgentScoped, BooleanFilter, CapabilityPermission, _valid
from agents.models import Agent, EventSource, EventSourceKind
from config.serializers import StrictIn
from governance import access
from governance.actors import Actor


class EventSourceOut(serializers.ModelSerializer):
    agent: serializers.SlugRelatedField[Agent] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    ingest_url = serializers.SerializerMethodField()

    class Meta:
        model = EventSource
        fields = ["name", "kind", "agent", "enabled", "ingest_url", "secret_rotated_at", "created_at", "updated_at"]

    def get_ingest_url(self, source: EventSource) -> str:
        request = self.context.get("request")
        path = f"/api/v1/events/ingest/{source.name}/"
        return request.build_absolute_uri(path) if request else path


# What agents.intake checks of a source's name and secret (printable ASCII, no spaces).
SOURCE_NAME_PATTERN = r"^[-a-zA-Z0-9_]{1,50}$"
SECRET_PATTERN = rf"^[!-~]{{{intake.SECRET_MIN_LENGTH},{intake.SECRET_MAX_LENGTH}}}$"
SECRET_FORMAT = f"{intake.SECRET_MIN_LENGTH} to {intake.SECRET_MAX_LENGTH} printable ASCII characters, no spaces"


class EventSourceIn(StrictIn):
    name = serializers.RegexField(
        SOURCE_NAME_PATTERN, max_length=50, error_messages={"invalid": "1 to 50 letters, digits, '-' or '_'"}
    )
    kind = serializers.ChoiceField(choices=EventSourceKind.choices)
    agent = serializers.CharField(max_length=100, help_text="the name of an ops agent")
    secret = serializers.RegexField(
        SECRET_PATTERN,
        write_only=True,
        trim_whitespace=False,
        error_messages={"invalid": SECRET_FORMAT},
        help_text="the signing secret (never shown again)",
    )
    enabled = serializers.BooleanField(required=False, default=True)


class EventSourceChangeIn(StrictIn):
    kind = serializers.ChoiceField(choices=EventSourceKind.choices, required=False)
    agent = serializers.CharField(max_length=100, required=False, help_text="the name of an ops agent")
    secret = serializers.RegexField(
        SECRET_PATTERN,
        write_only=True,
        trim_whitespace=False,
        required=False,
        error_messages={"invalid": SECRET_FORMAT},
        help_text="a new signing secret",
    )
    enabled = serializers.BooleanField(required=False)


def _agent_in_reach(request: Request, name: str) -> None:
    """A user limited to some agents points sources at those only (403 otherwise; an unknown
    agent is the service's 400)."""
    agent = Agent.objects.filter(name=name).first()
    if agent is not None and not access.user_may(request.user, MANAGE_AGENTS, agent):
        raise PermissionDenied(f"you do not manage agent {name}")


class EventSourceFilter(filters.FilterSet):
    enabled = BooleanFilter()

    class Meta:
        model = EventSource
        fields = ["kind", "enabled"]


class EventSourceViewSet(
    AgentScoped,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Event sources by name. The signing secret is write-only: set it on create, rotate it with
    a PATCH that gives a new one."""

    permission_classes = [CapabilityPermission]
    serializer_class = EventSourceOut
    queryset = EventSource.objects.select_related("agent")
    lookup_field = "name"
    filterset_class = EventSourceFilter
    needs = {"create": MANAGE_AGENTS, "partial_update": MANAGE_AGENTS, "destroy": MANAGE_AGENTS}

    @extend_schema(request=EventSourceIn, responses={201: EventSourceOut})
    def create(self, request: Request) -> Response:
        data = _valid(EventSourceIn, request)
        _agent_in_reach(request, data["agent"])
        source = intake.source_create(
            name=data["name"],
            kind=data["kind"],
            agent_name=data["agent"],
            secret=data["secret"],
            enabled=data["enabled"],
            actor=Actor.for_user(request.user),
        )
        return Response(EventSourceOut(source, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=EventSourceChangeIn, responses={200: EventSourceOut})
    def partial_update(self, request: Request, name: str) -> Response:
        source = self.get_object()
        data = _valid(EventSourceChangeIn, request)
        if "agent" in data:
            _agent_in_reach(request, data["agent"])
        source = intake.source_update(
            name=source.name,
            actor=Actor.for_user(request.user),
            kind=data.get("kind"),
            agent_name=data.get("agent"),
            enabled=data.get("enabled"),
            secret=data.get("secret"),
        )
        return Response(EventSourceOut(source, context={"request": request}).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        intake.source_delete(name=self.get_object().name, actor=Actor.for_user(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class IngestedOut(serializers.Serializer):
    event_id = serializers.CharField()
    task = serializers.IntegerField(allow_null=True)
    duplicate = serializers.BooleanField()
    ignored = serializers.CharField()


# "source" names a field attribute of DRF's own, so the answer is declared inline.
IngestAnswerOut = inline_serializer(
    name="IngestAnswer", fields={"source": serializers.CharField(), "events": IngestedOut(many=True)}
)


class EventIngestApi(APIView):
    """Events from a monitoring system, authenticated by their signature (agents.intake), not by
    a user: no session and so no CSRF token. An API token, if one is sent anyway, must be valid,
    as everywhere in the API."""

    authentication_classes = [
        cls
        for cls in cast("list[type[BaseAuthentication]]", api_settings.DEFAULT_AUTHENTICATION_CLASSES)
        if not issubclass(cls, SessionAuthentication)
    ]
    permission_classes = [AllowAny]

    @extend_schema(
        request={"application/json": dict},
        responses={200: IngestAnswerOut, 202: IngestAnswerOut},
        parameters=[
            OpenApiParameter(
                intake.SIGNATURE_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' followed by the raw body, keyed with the "
                f"source's secret>; refused {intake.SIGNATURE_TOLERANCE_SECONDS} s away from the server's clock",
            )
        ],
    )
    def post(self, request: Request, source: str) -> Response:
        """202 with the tasks started for new events, 200 when all were duplicates (their tasks)."""
        results = intake.events_ingest(
            source_name=source, body=request.body, signature=request.headers.get(intake.SIGNATURE_HEADER)
        )
        events = [
            {"event_id": r.event_id, "task": r.task_id, "duplicate": r.duplicate, "ignored": r.ignored} for r in results
        ]
        started = any(r.task_id is not None and not r.duplicate for r in results)
        return Response(
            {"source": source, "events": events}, status=status.HTTP_202_ACCEPTED if started else status.HTTP_200_OK
        )
