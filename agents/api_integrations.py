"""REST API of the integrations (agents.integrations): a tenant admin's credentials and
endpoints, and the outbox the relay delivers, with the replay of a dead letter.

Secrets are write-only: a credential's ``secret`` and an endpoint's ``signing_secret`` are
accepted on create (and as a rotation on PATCH) and never returned."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.api import AgentScoped, CapabilityPermission, _valid
from agents.integrations import relay, services
from agents.models import Credential, CredentialKind, DeliveryStatus, Endpoint, OutboxMessage
from config.serializers import StrictIn
from governance.access import Capability
from governance.actors import Actor

# Credentials and endpoints decide where a tenant's effects go and with which secrets: admins only.
ADMIN = Capability.MANAGE_USERS
ADMIN_NEEDS = {
    "list": ADMIN,
    "retrieve": ADMIN,
    "create": ADMIN,
    "partial_update": ADMIN,
    "destroy": ADMIN,
}


# What agents.integrations.services checks of names and secrets, said in the schema.
NAME_PATTERN = services.NAME_RE.pattern
NAME_FORMAT = "lowercase letters, digits and dashes, at most 50"
HEADER_PATTERN = r"^[A-Za-z0-9-]*$"


def _secret_pattern(minimum: int) -> str:
    return rf"^[^\r\n\x00]{{{minimum},{services.MAX_SECRET}}}$"


def _secret_field(minimum: int, **kwargs: Any) -> serializers.RegexField:
    message = f"{minimum} to {services.MAX_SECRET} characters, no line breaks or NUL"
    return serializers.RegexField(
        _secret_pattern(minimum), write_only=True, trim_whitespace=False, error_messages={"invalid": message}, **kwargs
    )


def _name_field() -> serializers.RegexField:
    return serializers.RegexField(NAME_PATTERN, max_length=50, error_messages={"invalid": NAME_FORMAT})


@extend_schema_field(
    {"type": "array", "items": {"type": "string", "enum": list(services.ENDPOINT_KINDS)}, "uniqueItems": True}
)
class KindsField(serializers.ListField):
    """The effect kinds an endpoint takes, each once."""


# ---------------------------------------------------------------------------- credentials
class CredentialOut(serializers.ModelSerializer):
    class Meta:
        model = Credential
        fields = ["name", "kind", "header_name", "created_by", "created_at", "rotated_at"]


class CredentialIn(StrictIn):
    name = _name_field()
    kind = serializers.ChoiceField(choices=CredentialKind.choices)
    header_name = serializers.RegexField(
        HEADER_PATTERN,
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        error_messages={"invalid": "a header name: letters, digits and dashes"},
        help_text="for kind header only: the header that carries the secret",
    )
    secret = _secret_field(1, help_text="never shown again; for kind basic 'user:password'")


class CredentialRotateIn(StrictIn):
    secret = _secret_field(1, help_text="the new value")


class CredentialViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Credentials by name; the secret goes in, never out. PATCH with a new secret rotates it."""

    permission_classes = [CapabilityPermission]
    serializer_class = CredentialOut
    queryset = Credential.objects.all()
    lookup_field = "name"
    needs = ADMIN_NEEDS

    @extend_schema(request=CredentialIn, responses={201: CredentialOut})
    def create(self, request: Request) -> Response:
        data = _valid(CredentialIn, request)
        credential = services.credential_create(
            name=data["name"],
            kind=data["kind"],
            header_name=data["header_name"],
            secret=data["secret"],
            actor=Actor.for_user(request.user),
        )
        return Response(CredentialOut(credential).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CredentialRotateIn, responses={200: CredentialOut})
    def partial_update(self, request: Request, name: str) -> Response:
        credential = self.get_object()
        data = _valid(CredentialRotateIn, request)
        credential = services.credential_rotate(
            name=credential.name, secret=data["secret"], actor=Actor.for_user(request.user)
        )
        return Response(CredentialOut(credential).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.credential_delete(name=self.get_object().name, actor=Actor.for_user(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------- endpoints
class EndpointOut(serializers.ModelSerializer):
    credential: serializers.SlugRelatedField[Credential] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = Endpoint
        fields = ["name", "url", "kinds", "credential", "enabled", "timeout_seconds", "created_at", "updated_at"]


class EndpointIn(StrictIn):
    name = _name_field()
    url = serializers.CharField(max_length=500, help_text="http(s), allowed by the operator's egress rules")
    kinds = KindsField(child=serializers.CharField(max_length=50), min_length=1)
    credential = serializers.CharField(
        max_length=50, required=False, allow_null=True, default=None, help_text="the name of a credential"
    )
    signing_secret = _secret_field(services.MIN_SIGNING_SECRET, help_text="signs every request (never shown again)")
    enabled = serializers.BooleanField(required=False, default=True)
    timeout_seconds = serializers.FloatField(
        required=False, default=10.0, min_value=services.MIN_TIMEOUT, max_value=services.MAX_TIMEOUT
    )


class EndpointChangeIn(StrictIn):
    url = serializers.CharField(max_length=500, required=False)
    kinds = KindsField(child=serializers.CharField(max_length=50), min_length=1, required=False)
    credential = serializers.CharField(max_length=50, required=False, allow_null=True, help_text="null: none")
    signing_secret = _secret_field(services.MIN_SIGNING_SECRET, required=False)
    enabled = serializers.BooleanField(required=False)
    timeout_seconds = serializers.FloatField(
        required=False, min_value=services.MIN_TIMEOUT, max_value=services.MAX_TIMEOUT
    )


class EndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Where the tenant's effects go, by kind. The URL must pass the operator's egress rules."""

    permission_classes = [CapabilityPermission]
    serializer_class = EndpointOut
    queryset = Endpoint.objects.select_related("credential")
    lookup_field = "name"
    needs = ADMIN_NEEDS

    @extend_schema(request=EndpointIn, responses={201: EndpointOut})
    def create(self, request: Request) -> Response:
        data = _valid(EndpointIn, request)
        endpoint = services.endpoint_create(actor=Actor.for_user(request.user), **data)
        return Response(EndpointOut(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=EndpointChangeIn, responses={200: EndpointOut})
    def partial_update(self, request: Request, name: str) -> Response:
        endpoint = self.get_object()
        data = _valid(EndpointChangeIn, request)
        endpoint = services.endpoint_update(name=endpoint.name, actor=Actor.for_user(request.user), **data)
        return Response(EndpointOut(endpoint).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.endpoint_delete(name=self.get_object().name, actor=Actor.for_user(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------- outbox
class OutboxOut(serializers.ModelSerializer):
    idempotency_key = serializers.CharField(source="effect.idempotency_key", read_only=True)
    task = serializers.IntegerField(source="effect.task_id", read_only=True)
    endpoint: serializers.SlugRelatedField[Endpoint] = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = OutboxMessage
        fields = [
            "id",
            "kind",
            "idempotency_key",
            "task",
            "payload",
            "status",
            "attempts",
            "last_error",
            "endpoint",
            "next_attempt_at",
            "delivered_at",
            "created_at",
        ]


class OutboxViewSet(AgentScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The effects the relay delivers, with their delivery state; an admin replays a dead letter."""

    permission_classes = [CapabilityPermission]
    serializer_class = OutboxOut
    queryset = OutboxMessage.objects.select_related("effect", "endpoint").order_by("-created_at", "-id")
    filterset_fields = ["status", "kind"]
    needs = {"replay": ADMIN}

    @extend_schema(request=None, responses={202: OutboxOut})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        """Send a dead, failed or unrouted message again (409 for any other)."""
        message = relay.outbox_replay(message_id=self.get_object().pk, actor=Actor.for_user(request.user))
        return Response(OutboxOut(message).data, status=status.HTTP_202_ACCEPTED)


__all__ = ["CredentialViewSet", "DeliveryStatus", "EndpointViewSet", "OutboxViewSet"]
