"""The API's sign-in: a password for a token (with the lockout of governance.lockout), the
caller's own tokens, and who the caller is."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.connection import connection
from config.serializers import NOT_BLANK, StrictIn, TextField
from governance import access, lockout, tokens
from governance.actors import Actor
from governance.api_fields import BodyRequired, IpField
from governance.models import ApiToken


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes governance.authentication (defined here, not there:
    DRF imports the authenticator before drf-spectacular can be imported)."""

    target_class = "governance.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A Vigil API token (POST /api/v1/auth/token); also accepted as `Token <token>`.",
        }


PASSWORD_TOKEN_NAME = "password sign-in"  # noqa: S105  (a name, not a secret)


class ApiTokenOut(serializers.ModelSerializer):
    active = serializers.SerializerMethodField()
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "username",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "active",
        ]

    def get_active(self, token: ApiToken) -> bool:
        return token.revoked_at is None and token.expires_at > timezone.now()


class IssuedTokenOut(ApiTokenOut):
    token = serializers.CharField(help_text="the token itself: shown this once, never again")

    class Meta(ApiTokenOut.Meta):
        fields = ["token", *ApiTokenOut.Meta.fields]


def _lifetime_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.VIGIL_API_TOKEN_MAX_DAYS,
        help_text=f"default {settings.VIGIL_API_TOKEN_DAYS}",
    )


class TokenIn(StrictIn):
    """A token to issue: its name, and how many days it lives."""

    name = TextField(max_length=100, trim_whitespace=False, validators=[NOT_BLANK])
    expires_in_days = _lifetime_field()


class PasswordIn(StrictIn):
    """A user's credentials, and the token to issue for them."""

    username = TextField(max_length=150, trim_whitespace=False)
    password = TextField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    name = TextField(
        max_length=100,
        required=False,
        trim_whitespace=False,
        validators=[NOT_BLANK],
        help_text=f"default {PASSWORD_TOKEN_NAME!r}",
    )
    expires_in_days = _lifetime_field()


def _issued_body(issued: tokens.IssuedToken) -> dict[str, Any]:
    return {"token": issued.secret, **ApiTokenOut(issued.token).data}


def _locked_response(lock: lockout.Lock) -> Response:
    return Response(
        {
            "code": "locked_out",
            "detail": lock.detail,
            "extra": {
                "limit": "VIGIL_LOCKOUT_FAILURES" if lock.kind == lockout.ACCOUNT else "VIGIL_LOCKOUT_IP_FAILURES",
                "retry_after": lock.retry_after,
            },
        },
        status=429,
        headers={"Retry-After": str(lock.retry_after)},
    )


class TokenObtainApi(APIView):
    """A new token for a username and password (named ``password sign-in`` unless named).
    Wrong credentials: 401 ``invalid_credentials``. Repeated failures lock the account, or the
    client's address, for a while: 429 with ``Retry-After``, the right password included."""

    permission_classes = [AllowAny]

    @extend_schema(request=PasswordIn, responses={200: IssuedTokenOut})
    def post(self, request: Request) -> Response:
        body = PasswordIn(data=request.data)
        body.is_valid(raise_exception=True)
        username = body.validated_data["username"]
        django_request = request._request
        user = authenticate(django_request, username=username, password=body.validated_data["password"])
        if user is None:
            lock = getattr(django_request, lockout.REQUEST_ATTRIBUTE, None)
            if lock is not None:
                return _locked_response(lock)
            # A well-formed body with credentials that are not valid here: 401, like a bad token.
            return Response(
                {"code": "invalid_credentials", "detail": "Unable to sign in with these credentials.", "extra": {}},
                status=401,
                headers={"WWW-Authenticate": 'Token realm="api"'},
            )
        issued = tokens.token_issue(
            user=user,
            name=body.validated_data.get("name") or PASSWORD_TOKEN_NAME,
            expires_in_days=body.validated_data.get("expires_in_days"),
        )
        return Response(_issued_body(issued))


class TokenListCreateApi(APIView):
    """The caller's tokens (never their secrets); POST issues a new one, whose secret the
    answer shows this once. Issuing needs a signed-in session or a password (POST
    /api/v1/auth/token): a token does not issue tokens."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: ApiTokenOut(many=True)})
    def get(self, request: Request) -> Response:
        return Response(ApiTokenOut(tokens.tokens_of(user=request.user).select_related("user"), many=True).data)

    @extend_schema(request=TokenIn, responses={201: IssuedTokenOut})
    def post(self, request: Request) -> Response:
        if request.auth is not None:  # an API token or an identity provider's access token
            raise PermissionDenied("a token cannot issue tokens: sign in with a password or a session")
        body = TokenIn(data=request.data)
        body.is_valid(raise_exception=True)
        issued = tokens.token_issue(
            user=request.user,
            name=body.validated_data["name"],
            expires_in_days=body.validated_data.get("expires_in_days"),
        )
        return Response(_issued_body(issued), status=201)


class TokenRevokeApi(APIView):
    """Revoke a token: one's own, or (admins) any user's of this tenant."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        admin = access.user_may(request.user, access.Capability.MANAGE_USERS)
        if not admin and ApiToken.objects.filter(pk=pk).exclude(user_id=int(str(request.user.pk))).exists():
            raise PermissionDenied("you may revoke only your own tokens")
        tokens.token_revoke(token_id=pk, actor=request.user, any_user=admin)
        return Response(status=204)


class MeApi(APIView):
    """Who the caller is: their user, tenant, roles, capabilities and agent scopes, and the
    token they called with (if they did)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        user = request.user
        tenant = connection.tenant
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return Response(
            {
                "id": user.pk,
                "username": user.get_username(),
                "email": getattr(user, "email", ""),
                "tenant": {"schema": tenant.schema_name, "name": tenant.name, "tier": tenant.tier},
                "roles": [code for code in access.ROLE_CODES if code in access.roles_of(user)],
                "capabilities": sorted(access.capabilities_of(user)),
                "agent_scopes": {grant: sorted(ids) for grant, ids in sorted(access.agent_grants(user).items())},
                "authenticated_by": "token" if token is not None else "session",
                "token": ApiTokenOut(token).data if token is not None else None,
            }
        )


class UnlockIn(StrictIn):
    """The account or the client address (or both) whose sign-in lockout to lift."""

    username = TextField(max_length=150, required=False, trim_whitespace=False)
    ip = IpField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise ValidationError({"username": ["name an account (username) or an address (ip)"]})
        return attrs


class UnlockInScheme(OpenApiSerializerExtension):
    """The schema of UnlockIn says that it needs one of its fields at least."""

    target_class = UnlockIn

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        schema["minProperties"] = 1
        return schema


class UnlockOut(serializers.Serializer[Any]):
    username = serializers.CharField(help_text="empty when an address was named alone")
    ip = serializers.CharField(help_text="empty when an account was named alone")
    was_locked = serializers.BooleanField()


class UnlockApi(APIView):
    """Lift the sign-in lockout of an account or a client address of this tenant (admins)."""

    permission_classes = [IsAuthenticated]
    schema = BodyRequired()

    @extend_schema(request=UnlockIn, responses={200: UnlockOut})
    def post(self, request: Request) -> Response:
        if not access.user_may(request.user, access.Capability.MANAGE_USERS):
            raise PermissionDenied("only an admin may lift a lockout")
        body = UnlockIn(data=request.data)
        body.is_valid(raise_exception=True)
        username, ip = body.validated_data.get("username", ""), body.validated_data.get("ip", "")
        was_locked = lockout.lockout_lift(actor=Actor.for_user(request.user), username=username, ip=ip)
        return Response({"username": username, "ip": ip, "was_locked": was_locked})
