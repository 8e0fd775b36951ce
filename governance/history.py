"""Who changed a governed model and why, in its django-simple-history records.

Every historical record is completed here as it is written: ``history_user`` is the request's
user only when the record is written to the schema that user lives in (a tenant's user must
never be recorded as the public schema's user of the same id, nor the reverse), and
``history_change_reason`` is the reason the admin's change form required
(governance.history_admin), when the record has none of its own.

Role assignments: roles are held as Django group membership (governance.roles), which
simple-history cannot follow (``user.groups.add`` saves no model). ``RoleAssignment`` mirrors
the membership of role groups, kept in step here from ``m2m_changed`` whatever changes it (the
admin, the roles API, provisioning), so each grant and revocation is a historical record.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record

from config.connection import connection
from governance.access import ROLE_CODES
from governance.models import RoleAssignment

# The attribute of the request that carries the reason the admin's form was given.
REASON_ATTRIBUTE = "history_change_reason"
REASON_MAX = 100  # simple-history's history_change_reason column


def current_request() -> Any:
    return getattr(HistoricalRecords.context, "request", None)


@receiver(pre_create_historical_record)
def history_record_complete(sender: Any, history_instance: Any, **kwargs: Any) -> None:
    request = current_request()
    if request is None:
        return
    tenant = getattr(request, "tenant", None)
    if history_instance.history_user_id is not None and (
        tenant is None or tenant.schema_name != connection.schema_name
    ):
        history_instance.history_user = None
    reason = getattr(request, REASON_ATTRIBUTE, "")
    if reason and not history_instance.history_change_reason:
        history_instance.history_change_reason = reason[:REASON_MAX]


def _role_group_names(pks: Any) -> dict[int, str]:
    return dict(Group.objects.filter(pk__in=pks or (), name__in=ROLE_CODES).values_list("pk", "name"))


@receiver(m2m_changed, sender=User.groups.through)
def role_assignments_follow(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action == "pre_clear":
        # Which rows the clear will take is known only before it.
        held = RoleAssignment.objects.filter(**({"role": instance.name} if reverse else {"user_id": instance.pk}))
        instance._role_assignments_cleared = list(held)
        return
    if action == "post_clear":
        for assignment in getattr(instance, "_role_assignments_cleared", []):
            assignment.delete()
        return
    if action not in ("post_add", "post_remove"):
        return
    if reverse:  # group.user_set.add(...): instance is the group, pk_set the users
        if instance.name not in ROLE_CODES:
            return
        pairs = [(user_pk, instance.name) for user_pk in pk_set or ()]
    else:
        pairs = [(instance.pk, name) for name in _role_group_names(pk_set).values()]
    for user_pk, role in pairs:
        if action == "post_add":
            RoleAssignment.objects.get_or_create(user_id=user_pk, role=role)
        else:
            for assignment in RoleAssignment.objects.filter(user_id=user_pk, role=role):
                assignment.delete()  # one by one: each revocation is a historical record
