"""Who may do what to which object: the one answer for the API, the admin and the services.

Roles are fixed codes, each held as the Django group of the same name. A role grants
capabilities (ROLES, with inheritance); nothing else does: Django model permissions of groups
or users, and the ``is_superuser`` / ``is_staff`` flags, are never read here. The role groups'
model permissions are derived from this table by ``governance.roles.roles_sync`` only so that
Django's own admin checks agree with it.

Object scopes: a user may be limited to some agents with guardian object permissions on
``agents.Agent`` (``view_agent``, ``manage_agent``, ``review_agent``). A user who holds none
reaches every agent; a user who holds some reaches only those agents: they see each agent
they hold any of the three on, manage and run those they hold ``manage_agent`` on, and review
those they hold ``review_agent`` on. Grants narrow what the role allows, never widen it.

This module speaks in capabilities and model labels; it imports no app above governance.
Objects are read duck-typed: ``AGENT_PATHS`` says how an object of each label leads to its agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from guardian.models import UserObjectPermission


class Role(StrEnum):
    ADMIN = "admin"
    AGENT_MANAGER = "agent_manager"
    REVIEWER = "reviewer"
    VIEWER = "viewer"


class Capability(StrEnum):
    VIEW = "view"  # read agents, tools, tasks, events, approval requests and the audit trail
    MANAGE_AGENTS = "manage_agents"  # create, configure, pause, resume and roll back agents
    RUN = "run"  # run agents; cancel and retry tasks
    REVIEW = "review"  # decide approval requests that need a reviewer; escalate and override tasks
    REVIEW_AS_ADMIN = "review_as_admin"  # decide approval requests that need an admin
    MANAGE_USERS = "manage_users"  # users, their roles and their agent scopes


@dataclass(frozen=True)
class RoleSpec:
    inherits: tuple[Role, ...]
    grants: frozenset[Capability]


ROLES: dict[Role, RoleSpec] = {
    Role.VIEWER: RoleSpec(inherits=(), grants=frozenset({Capability.VIEW})),
    Role.REVIEWER: RoleSpec(inherits=(Role.VIEWER,), grants=frozenset({Capability.REVIEW})),
    Role.AGENT_MANAGER: RoleSpec(inherits=(Role.VIEWER,), grants=frozenset({Capability.MANAGE_AGENTS, Capability.RUN})),
    Role.ADMIN: RoleSpec(
        inherits=(Role.REVIEWER, Role.AGENT_MANAGER),
        grants=frozenset({Capability.REVIEW_AS_ADMIN, Capability.MANAGE_USERS}),
    ),
}
ROLE_CODES: tuple[str, ...] = tuple(role.value for role in ROLES)


def _closure(role: Role) -> frozenset[Capability]:
    spec = ROLES[role]
    inherited: set[Capability] = set()
    for parent in spec.inherits:
        inherited |= _closure(parent)
    return frozenset(inherited | spec.grants)


ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {role: _closure(role) for role in ROLES}

# The capability an approval request needs, by the role it names; unknown roles need the most.
DECIDING_CAPABILITY: dict[str, Capability] = {Role.REVIEWER: Capability.REVIEW, Role.ADMIN: Capability.REVIEW_AS_ADMIN}

# Agent scopes: the guardian permission (on agents.Agent) that narrows each capability.
AGENT_LABEL = "agents.agent"
VIEW_AGENT, MANAGE_AGENT, REVIEW_AGENT = "view_agent", "manage_agent", "review_agent"
AGENT_GRANTS = (VIEW_AGENT, MANAGE_AGENT, REVIEW_AGENT)
SCOPED_BY: dict[Capability, frozenset[str]] = {
    Capability.VIEW: frozenset(AGENT_GRANTS),
    Capability.MANAGE_AGENTS: frozenset({MANAGE_AGENT}),
    Capability.RUN: frozenset({MANAGE_AGENT}),
    Capability.REVIEW: frozenset({REVIEW_AGENT}),
    Capability.REVIEW_AS_ADMIN: frozenset({REVIEW_AGENT}),
}

# How an object of each model leads to its agent: the relations to follow, as a queryset
# lookup path. () is the agent itself. Models not listed belong to no agent and are not scoped.
AGENT_PATHS: dict[str, tuple[str, ...]] = {
    "agents.agent": (),
    "agents.agentconfigversion": ("agent",),
    "agents.task": ("agent",),
    "agents.step": ("task", "agent"),
    "agents.taskevent": ("task", "agent"),
    "agents.effect": ("task", "agent"),
    "agents.outboxmessage": ("effect", "task", "agent"),
    "hitl.approvalrequest": ("task", "agent"),
    "agents.eventsource": ("agent",),
    "agents.ingestedevent": ("source", "agent"),
}

_CACHE = "_vigil_access"
M = TypeVar("M", bound=Model)


@dataclass
class _Access:
    roles: frozenset[Role]
    grants: dict[str, frozenset[int]] | None = field(default=None)


def _active(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))


def _access(user: Any) -> _Access:
    # Cached on the user object, which lives for one request (or one service call).
    cached = user.__dict__.get(_CACHE)
    if cached is None:
        names = user.groups.filter(name__in=ROLE_CODES).values_list("name", flat=True)
        cached = _Access(roles=frozenset(Role(name) for name in names))
        user.__dict__[_CACHE] = cached
    return cached


def access_forget(user: Any) -> None:
    """Drop what was read about ``user``'s roles and scopes (after changing them)."""
    user.__dict__.pop(_CACHE, None)


def roles_of(user: Any) -> frozenset[Role]:
    """The roles ``user`` holds; none for an anonymous or inactive user."""
    return _access(user).roles if _active(user) else frozenset()


def capabilities_of(user: Any) -> frozenset[Capability]:
    caps: set[Capability] = set()
    for role in roles_of(user):
        caps |= ROLE_CAPABILITIES[role]
    return frozenset(caps)


def access_sql(user_id: str) -> tuple[str, list[Any]]:
    """Two array columns, the roles and the agent grants of the user whose id the SQL
    expression ``user_id`` gives, with their parameters: for a query that loads a user by hand
    (API token authentication reads token, user, roles and grants in one statement). Hand
    their values to ``access_preload``. The grants as ``agent_grants_held`` reads them."""
    sql = (
        "ARRAY(SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id"
        f" WHERE ug.user_id = {user_id} AND g.name = ANY(%s)),"
        " ARRAY(SELECT p.codename || ':' || o.object_pk FROM guardian_userobjectpermission o"
        " JOIN auth_permission p ON p.id = o.permission_id JOIN django_content_type ct ON ct.id = o.content_type_id"
        f" WHERE o.user_id = {user_id} AND ct.app_label = 'agents' AND ct.model = 'agent' AND p.codename = ANY(%s))"
    )
    return sql, [list(ROLE_CODES), list(AGENT_GRANTS)]


def access_preload(user: Any, *, roles: Iterable[str], grants: Iterable[str]) -> None:
    """Remember on ``user`` the roles and grants read with ``access_sql``."""
    pairs = (grant.partition(":") for grant in grants)
    user.__dict__[_CACHE] = _Access(
        roles=frozenset(Role(name) for name in roles),
        grants=_grants_of((codename, object_pk) for codename, _, object_pk in pairs),
    )


def agent_grants_held(*, user_id: int) -> dict[str, frozenset[int]]:
    """The agent grants stored for a user, by grant (``view_agent`` …), whether or not the
    user may use them now."""
    rows = UserObjectPermission.objects.filter(
        user_id=user_id,
        content_type__app_label="agents",
        content_type__model="agent",
        permission__codename__in=AGENT_GRANTS,
    ).values_list("permission__codename", "object_pk")
    return _grants_of(rows)


def _grants_of(rows: Iterable[tuple[str, str]]) -> dict[str, frozenset[int]]:
    found: dict[str, set[int]] = {}
    for codename, object_pk in rows:
        if object_pk.isascii() and object_pk.isdigit():
            found.setdefault(codename, set()).add(int(object_pk))
    return {codename: frozenset(ids) for codename, ids in found.items()}


def agent_grants(user: Any) -> dict[str, frozenset[int]]:
    """The agents ``user`` is limited to, by grant; empty when unscoped (or not active)."""
    if not _active(user):
        return {}
    access = _access(user)
    if access.grants is None:
        access.grants = agent_grants_held(user_id=user.pk)
    return access.grants


def agent_reach(user: Any, capability: Capability) -> frozenset[int] | None:
    """Ids of the agents ``user`` may apply ``capability`` to; None means every agent. Does
    not check the role: ask ``user_may`` for that."""
    grants = agent_grants(user)
    if not grants:
        return None
    reach: set[int] = set()
    for codename in SCOPED_BY.get(capability, frozenset()):
        reach |= grants.get(codename, frozenset())
    return frozenset(reach)


def agent_id_of(obj: Any) -> int | None:
    """The id of the agent ``obj`` belongs to, or None for an object of no agent."""
    label = obj._meta.label_lower
    if label not in AGENT_PATHS:
        return None
    for relation in AGENT_PATHS[label][:-1]:
        obj = getattr(obj, relation)
    path = AGENT_PATHS[label]
    return int(obj.pk if not path else getattr(obj, f"{path[-1]}_id"))


def user_may(user: Any, capability: Capability, obj: Any = None) -> bool:
    """May ``user`` apply ``capability`` (to ``obj``, a model instance, when given)? Without
    an object the answer is the role's: lists are narrowed by ``scoped``."""
    if capability not in capabilities_of(user):
        return False
    if obj is None:
        return True
    agent_id = agent_id_of(obj)
    reach = agent_reach(user, capability) if agent_id is not None else None
    return reach is None or agent_id in reach


def scoped(user: Any, capability: Capability, queryset: QuerySet[M]) -> QuerySet[M]:
    """``queryset`` narrowed to the rows ``user`` may apply ``capability`` to (none without
    the capability)."""
    if capability not in capabilities_of(user):
        return queryset.none()
    label = queryset.model._meta.label_lower
    if label not in AGENT_PATHS:
        return queryset
    reach = agent_reach(user, capability)
    if reach is None:
        return queryset
    lookup = "__".join(AGENT_PATHS[label]) or "pk"
    return queryset.filter(**{f"{lookup}__in": sorted(reach)})


@dataclass(frozen=True)
class Refusal:
    """Why a user may not do something: ``rule`` is a stable code, ``detail`` says it to a person."""

    rule: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


def decide_refusal(
    user: Any,
    *,
    required_role: str,
    agent_id: int,
    agent_name: str,
    requester_id: int | None,
    config_author_id: int | None,
    owner_id: int | None = None,
) -> Refusal | None:
    """Why ``user`` may not decide an approval request of agent ``agent_id`` that needs
    ``required_role``, opened for a task requested by ``requester_id``, while the agent's
    latest configuration was written by ``config_author_id``; None when they may.

    Four-eyes rules: whoever asked for the task, owns the agent (``owner_id``: who created
    it) or last changed how the agent behaves, does not also approve what it proposes."""
    needed = DECIDING_CAPABILITY.get(required_role, Capability.REVIEW_AS_ADMIN)
    if needed not in capabilities_of(user):
        return Refusal(
            "role", f"deciding this request needs the {required_role} role", {"required_role": required_role}
        )
    reach = agent_reach(user, needed)
    if reach is not None and agent_id not in reach:
        return Refusal("agent_scope", f"you do not review agent {agent_name}", {"agent": agent_name})
    if requester_id is not None and requester_id == user.pk:
        return Refusal("requester", "you requested this task; another reviewer must decide its approvals")
    if owner_id is not None and owner_id == user.pk:
        return Refusal(
            "owner",
            f"you own agent {agent_name}; another reviewer must decide its approvals",
            {"agent": agent_name},
        )
    if config_author_id is not None and config_author_id == user.pk:
        return Refusal(
            "config_author",
            f"you made the latest change to agent {agent_name}'s configuration; "
            "another reviewer must decide its approvals",
            {"agent": agent_name},
        )
    return None


def role_codes(roles: Iterable[str]) -> list[str]:
    """``roles`` in the table's order, refusing a code that is not a role."""
    wanted = set(roles)
    unknown = sorted(wanted - set(ROLE_CODES))
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(unknown)}; roles are {', '.join(ROLE_CODES)}")
    return [code for code in ROLE_CODES if code in wanted]
