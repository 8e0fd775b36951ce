"""Role groups in each schema, and the services that give users roles and agent scopes.

What a role may do is decided by ``governance.access`` alone. The role groups still carry
Django model permissions, derived here from the same table, only so that Django's own admin
checks (inlines, templates) agree with it; the admin shows them read-only and
``roles_sync`` rewrites them after every migrate. Nobody may add, change or delete audit events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q
from guardian.models import UserObjectPermission

from governance import access
from governance.access import AGENT_GRANTS, ROLE_CAPABILITIES, ROLE_CODES, Capability, Role
from governance.actors import Actor
from governance.services import audit_record

# capability -> the Django model permissions it stands for: (app_label, action or "*", model or "*")
CAPABILITY_MODEL_PERMISSIONS: dict[Capability, list[tuple[str, str, str]]] = {
    Capability.VIEW: [(app, "view", "*") for app in ("agents", "hitl", "knowledge", "governance")],
    Capability.MANAGE_AGENTS: [("agents", "add", "agent"), ("agents", "change", "agent"), ("knowledge", "*", "*")],
    Capability.RUN: [],
    Capability.REVIEW: [("hitl", "change", "approvalrequest")],
    Capability.REVIEW_AS_ADMIN: [],
    Capability.MANAGE_USERS: [("auth", "*", "user"), ("auth", "view", "group"), ("auth", "view", "permission")],
}
ROLE_NAMES = ROLE_CODES
FORBIDDEN_FOR_ALL = Q(content_type__app_label="governance", content_type__model="auditevent") & ~Q(
    codename__startswith="view_"
)


def _rule_query(app_label: str, action: str, model: str) -> Q:
    query = Q(content_type__app_label=app_label)
    if action != "*":
        query &= Q(codename__startswith=f"{action}_")
    if model != "*":
        query &= Q(content_type__model=model)
    return query


def role_permissions(role: str) -> Q:
    """The Django permissions that stand for ``role``'s capabilities."""
    query = Q(pk__in=[])
    for capability in ROLE_CAPABILITIES[Role(role)]:
        for rule in CAPABILITY_MODEL_PERMISSIONS[capability]:
            query |= _rule_query(*rule)
    return query


def roles_sync(*, using: str = "default") -> dict[str, int]:
    """Create the role groups in the current schema and set their permissions to exactly what
    their capabilities stand for. Idempotent; runs after every migrate of a schema."""
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    counts = {}
    for role in ROLE_NAMES:
        group, _ = Group.objects.using(using).get_or_create(name=role)
        perms = list(Permission.objects.using(using).filter(role_permissions(role)).exclude(FORBIDDEN_FOR_ALL))
        group.permissions.set(perms)
        counts[role] = len(perms)
    return counts


@transaction.atomic
def user_roles_set(*, user: Any, roles: Iterable[str], actor: Any) -> list[str]:
    """Give ``user`` exactly ``roles`` (role codes) and make them staff exactly when they hold
    one (roles decide who enters the admin). Audited when anything changes. Raises ValueError
    for a code that is not a role."""
    wanted = access.role_codes(roles)
    before = sorted(user.groups.filter(name__in=ROLE_CODES).values_list("name", flat=True))
    user.groups.remove(*Group.objects.filter(name__in=set(ROLE_CODES) - set(wanted)))
    user.groups.add(*Group.objects.filter(name__in=wanted))
    staff = bool(wanted)
    if user.is_staff != staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff"])
    access.access_forget(user)
    if before != sorted(wanted):
        audit_record(
            actor=Actor.for_user(actor),
            verb="user.roles_changed",
            target_type="user",
            target_id=user.pk,
            data={"username": user.get_username(), "from": before, "to": sorted(wanted)},
        )
    return wanted


@transaction.atomic
def user_agent_scope_set(*, user: Any, grant: str, agent_ids: Iterable[int], actor: Any) -> list[int]:
    """Make ``agent_ids`` exactly the agents on which ``user`` holds ``grant`` (view_agent,
    manage_agent or review_agent); see governance.access for what scopes mean. Audited when
    anything changes. Raises ValueError for an unknown grant or agent."""
    if grant not in AGENT_GRANTS:
        raise ValueError(f"unknown agent grant {grant!r}; grants are {', '.join(AGENT_GRANTS)}")
    wanted = sorted({int(pk) for pk in agent_ids})
    agent_model = global_apps.get_model(access.AGENT_LABEL)
    missing = sorted(set(wanted) - set(agent_model.objects.filter(pk__in=wanted).values_list("pk", flat=True)))
    if missing:
        raise ValueError(f"no agents with ids {', '.join(map(str, missing))}")
    permission = Permission.objects.get(content_type__app_label="agents", content_type__model="agent", codename=grant)
    held = UserObjectPermission.objects.filter(user_id=user.pk, permission=permission)
    before = sorted(int(pk) for pk in held.values_list("object_pk", flat=True))
    held.exclude(object_pk__in=[str(pk) for pk in wanted]).delete()
    UserObjectPermission.objects.bulk_create(
        [
            UserObjectPermission(
                user_id=user.pk, permission=permission, content_type_id=permission.content_type_id, object_pk=str(pk)
            )
            for pk in sorted(set(wanted) - set(before))
        ]
    )
    access.access_forget(user)
    if before != wanted:
        audit_record(
            actor=Actor.for_user(actor),
            verb="user.agent_scope_changed",
            target_type="user",
            target_id=user.pk,
            data={"username": user.get_username(), "grant": grant, "from": before, "to": wanted},
        )
    return wanted
