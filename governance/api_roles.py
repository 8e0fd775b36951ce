"""Roles over the API: the role table, giving and taking a role (admins only, audited by
governance.roles), and "may this user do C (on agent R)?" answered by governance.access."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.models import User
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import VigilError
from config.serializers import StrictIn, TextField
from governance import access, roles
from governance.access import ROLE_CAPABILITIES, ROLE_CODES, ROLES, Capability, Role


class UserNotFound(VigilError):
    code = "not_found"
    status = 404


class AgentNotFound(VigilError):
    code = "not_found"
    status = 404


class InvalidQuery(VigilError):
    code = "invalid"
    status = 400


class RoleRefused(VigilError):
    code = "role_refused"
    status = 409


class CanView(BasePermission):
    message = "your role does not allow this"

    def has_permission(self, request: Request, view: Any) -> bool:
        return access.user_may(request.user, Capability.VIEW)


class CanManageUsers(BasePermission):
    message = "only an admin may change roles"

    def has_permission(self, request: Request, view: Any) -> bool:
        return access.user_may(request.user, Capability.MANAGE_USERS)


class RoleChangeIn(StrictIn):
    user = TextField(max_length=150, help_text="the user's username")
    role = serializers.ChoiceField(choices=list(ROLE_CODES))


def _user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise UserNotFound(f"no user {username!r} in this tenant", user=username)
    return user


def _held(user: User) -> list[str]:
    return sorted(user.groups.filter(name__in=ROLE_CODES).values_list("name", flat=True))


class RoleListApi(APIView):
    """Every role: what it inherits and the capabilities it grants; admins also see who holds it."""

    permission_classes = [CanView]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        members: dict[str, list[str]] = {}
        admin = access.user_may(request.user, Capability.MANAGE_USERS)
        if admin:
            for name, username in User.objects.filter(groups__name__in=ROLE_CODES, is_active=True).values_list(
                "groups__name", "username"
            ):
                members.setdefault(name, []).append(username)
        rows = []
        for role, spec in ROLES.items():
            row: dict[str, Any] = {
                "code": role.value,
                "inherits": [parent.value for parent in spec.inherits],
                "capabilities": sorted(ROLE_CAPABILITIES[role]),
            }
            if admin:
                row["users"] = sorted(members.get(role.value, []))
            rows.append(row)
        return Response({"roles": rows})


class RoleAssignApi(APIView):
    """Give a user a role (on top of the roles they hold)."""

    permission_classes = [CanManageUsers]

    @extend_schema(request=RoleChangeIn, responses={200: dict})
    def post(self, request: Request) -> Response:
        body = RoleChangeIn(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            user = _user(body.validated_data["user"])
            held = roles.user_roles_set(
                user=user, roles={*_held(user), body.validated_data["role"]}, actor=request.user
            )
        return Response({"user": user.get_username(), "roles": held})


@transaction.atomic
def role_revoke(*, user: User, role: str, actor: Any) -> list[str]:
    """Take ``role`` from ``user`` (audited by governance.roles); the roles they keep. Refuses
    (RoleRefused) to take the admin role from ``actor`` themselves or from the last active admin."""
    if role == Role.ADMIN:
        if actor is not None and user.pk == actor.pk:
            raise RoleRefused("you cannot take the admin role from yourself; ask another admin", rule="self")
        # The admins' rows stay locked until commit: of two admins revoking each other at
        # once, the second finds the first no longer an admin and the other one the last.
        admins = list(
            User.objects.select_for_update()
            .filter(groups__name=Role.ADMIN, is_active=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if admins == [user.pk]:
            raise RoleRefused(
                "this is the tenant's last admin: give another user the admin role first", rule="last_admin"
            )
    return roles.user_roles_set(user=user, roles=set(_held(user)) - {role}, actor=actor)


class RoleRevokeApi(APIView):
    """Take a role from a user. Nobody takes the admin role from themselves, and the tenant's
    last active admin keeps it (409)."""

    permission_classes = [CanManageUsers]

    @extend_schema(request=RoleChangeIn, responses={200: dict})
    def post(self, request: Request) -> Response:
        body = RoleChangeIn(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            user = _user(body.validated_data["user"])
            held = role_revoke(user=user, role=body.validated_data["role"], actor=request.user)
        return Response({"user": user.get_username(), "roles": held})


CHECK_PARAMETERS = [
    OpenApiParameter("capability", str, required=True, enum=[c.value for c in Capability]),
    OpenApiParameter("user", str, description="a username; the caller when left out (others: admins only)"),
    OpenApiParameter("agent", int, description="an agent's id: may they do it to this agent?"),
]


class PermissionCheckApi(APIView):
    """May ``user`` apply ``capability`` (to ``agent``)? ``reason`` says why not: ``role``
    (none of their roles grants it) or ``agent_scope`` (the agent is outside their scope).
    Anyone may ask about themselves; about someone else, admins only."""

    permission_classes = [CanView]

    @extend_schema(parameters=CHECK_PARAMETERS, responses={200: dict})
    def get(self, request: Request) -> Response:
        params = request.query_params
        capability_code = params.get("capability", "")
        if capability_code not in {c.value for c in Capability}:
            raise InvalidQuery(
                f"capability must be one of {', '.join(c.value for c in Capability)}", field="capability"
            )
        capability = Capability(capability_code)
        username = params.get("user") or request.user.get_username()
        if username != request.user.get_username() and not access.user_may(request.user, Capability.MANAGE_USERS):
            raise PermissionDenied("only an admin may ask about another user")
        user = _user(username)
        agent = None
        agent_param = params.get("agent")
        if agent_param:
            if not (agent_param.isascii() and agent_param.isdigit()):
                raise InvalidQuery("agent must be an agent's id", field="agent")
            agent = global_apps.get_model(access.AGENT_LABEL).objects.filter(pk=int(agent_param)).first()
            if agent is None:
                raise AgentNotFound(f"no agent {agent_param}", agent=agent_param)
        allowed = access.user_may(user, capability, agent)
        reason = None
        if not allowed:
            reason = "role" if capability not in access.capabilities_of(user) else "agent_scope"
        return Response(
            {
                "user": user.get_username(),
                "capability": capability.value,
                "agent": agent.pk if agent is not None else None,
                "allowed": allowed,
                "reason": reason,
                "roles": [code for code in ROLE_CODES if code in access.roles_of(user)],
            }
        )
