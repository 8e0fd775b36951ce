"""Roles are Django groups in each schema; what each may do is data here.

Inheritance: viewer ⊂ reviewer, viewer ⊂ agent_manager, and admin holds all of them plus
user and role management. Nobody may add, change or delete audit events.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

DOMAIN_APPS = ("agents", "hitl", "knowledge", "governance")

# role -> (inherits, [(app_label, action or "*", model or "*"), ...])
ROLE_RULES: dict[str, tuple[tuple[str, ...], list[tuple[str, str, str]]]] = {
    "viewer": ((), [(app, "view", "*") for app in DOMAIN_APPS]),
    "reviewer": (("viewer",), [("hitl", "change", "*")]),
    "agent_manager": (("viewer",), [("agents", "*", "*"), ("knowledge", "*", "*")]),
    "admin": (
        ("reviewer", "agent_manager"),
        [("hitl", "*", "*"), ("auth", "*", "user"), ("auth", "*", "group"), ("auth", "view", "permission"),
         ("admin", "view", "logentry"), ("guardian", "*", "*")],
    ),
}
ROLE_NAMES = tuple(ROLE_RULES)
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
    inherits, rules = ROLE_RULES[role]
    query = Q(pk__in=[])
    for parent in inherits:
        query |= role_permissions(parent)
    for rule in rules:
        query |= _rule_query(*rule)
    return query


def roles_sync(*, using: str = "default") -> dict[str, int]:
    """Create the role groups in the current schema and set their permissions to exactly what
    ROLE_RULES grants. Idempotent; runs after every migrate of a schema."""
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    counts = {}
    for role in ROLE_NAMES:
        group, _ = Group.objects.using(using).get_or_create(name=role)
        perms = list(Permission.objects.using(using).filter(role_permissions(role)).exclude(FORBIDDEN_FOR_ALL))
        group.permissions.set(perms)
        counts[role] = len(perms)
    return counts
