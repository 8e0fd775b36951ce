"""Who works an approval request: automatic assignment to the least-loaded available reviewer
who may decide it, manual claim, release and reassignment (F-HITL queue).

Lock order, everywhere: the request row first, then reviewer profiles. The automatic pick is
one ``SELECT … FOR UPDATE SKIP LOCKED`` over the profiles with a free slot: a profile another
transaction is filling is skipped, and a profile whose slot was taken since the statement's
snapshot is re-checked (``open_count < capacity``) on its newest version before it is locked,
so two requests never land on one reviewer's last slot."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone
from guardian.models import UserObjectPermission

from agents.models import AgentConfigVersion
from governance import access
from governance.access import AGENT_GRANTS, DECIDING_CAPABILITY, ROLE_CAPABILITIES, SCOPED_BY, Capability
from governance.actors import Actor
from governance.services import audit_record
from hitl.exceptions import (
    ApprovalAlreadyDecided,
    ApprovalForbidden,
    ApprovalNotFound,
    AwaitingClarification,
    ReviewerAtCapacity,
)
from hitl.models import (
    ApprovalEvent,
    ApprovalEventKind,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalVote,
    ReviewerProfile,
)
from hitl.notify import Notice, assignment_publish, reviewer_notify


def eligible_profiles(*, approval: ApprovalRequest, exclude: tuple[int, ...] = ()) -> QuerySet[ReviewerProfile]:
    """Available profiles with a free slot whose user may decide ``approval`` by
    governance.access's rules (a role granting the deciding capability, a ``review_agent``
    grant on the agent when the user is scoped, neither the task's requester, the agent's owner
    nor its latest config author), least loaded first, then longest since their last assignment."""
    needed = DECIDING_CAPABILITY.get(approval.required_role, Capability.REVIEW_AS_ADMIN)
    roles = [role.value for role, caps in ROLE_CAPABILITIES.items() if needed in caps]
    task = approval.task
    versions = AgentConfigVersion.objects.filter(agent_id=task.agent_id)
    author_id = versions.order_by("-version").values_list("author_id", flat=True).first()
    owner_id = versions.order_by("version").values_list("author_id", flat=True).first()
    excluded = {uid for uid in (task.created_by_id, author_id, owner_id, *exclude) if uid is not None}
    agent_grants = UserObjectPermission.objects.filter(
        user_id=OuterRef("user_id"),
        content_type__app_label="agents",
        content_type__model="agent",
        permission__codename__in=AGENT_GRANTS,
    )
    review_grant = agent_grants.filter(permission__codename__in=SCOPED_BY[needed], object_pk=str(task.agent_id))
    holds_role = User.groups.through.objects.filter(user_id=OuterRef("user_id"), group__name__in=roles)
    # A reviewer who voted on it already (quorum) has nothing left to do with it.
    voted = ApprovalVote.objects.filter(approval_id=approval.pk, user_id=OuterRef("user_id"))
    return (
        ReviewerProfile.objects.filter(available=True, open_count__lt=F("capacity"), user__is_active=True)
        .filter(Exists(holds_role))
        .filter(~Exists(agent_grants) | Exists(review_grant))
        .filter(~Exists(voted))
        .exclude(user_id__in=excluded)
        .order_by("open_count", F("last_assigned_at").asc(nulls_first=True), "id")
    )


def _history(approval: ApprovalRequest, kind: str, *, actor: User | None, now: datetime, **data: object) -> None:
    ApprovalEvent.objects.create(approval=approval, kind=kind, actor=actor, data=data, created_at=now)


def slot_free(approval: ApprovalRequest) -> None:
    """Give the assignee's slot back (inside the caller's transaction, request row locked)."""
    if approval.assignee_id is not None and approval.status == ApprovalStatus.ASSIGNED:
        ReviewerProfile.objects.filter(user_id=approval.assignee_id, open_count__gt=0).update(
            open_count=F("open_count") - 1
        )


def _take(approval: ApprovalRequest, profile: ReviewerProfile, *, now: datetime) -> None:
    ReviewerProfile.objects.filter(pk=profile.pk).update(open_count=F("open_count") + 1, last_assigned_at=now)
    approval.assignee_id = profile.user_id
    approval.assigned_at = now
    approval.status = ApprovalStatus.ASSIGNED
    approval.save(update_fields=["assignee", "assigned_at", "status"])


def assign_next(
    *, approval: ApprovalRequest, now: datetime, exclude: tuple[int, ...] = (), notice: Notice = Notice.ASSIGNED
) -> User | None:
    """Inside the caller's transaction, with ``approval`` locked and open and unassigned: hand
    it to the least-loaded eligible reviewer (None when nobody has a free slot), record it in
    its history and the audit chain, and notify the reviewer after commit."""
    profile = (
        eligible_profiles(approval=approval, exclude=exclude).select_for_update(skip_locked=True, of=("self",)).first()
    )
    if profile is None:
        return None
    _take(approval, profile, now=now)
    user = User.objects.get(pk=profile.user_id)
    _history(approval, ApprovalEventKind.ASSIGNED, actor=None, now=now, assignee=user.get_username())
    audit_record(
        actor=Actor.system("assignment"),
        verb="approval.assigned",
        target_type="approval",
        target_id=approval.pk,
        data={"assignee": user.get_username(), "open_count": profile.open_count + 1},
    )
    reviewer_notify(notice=notice, user=user, approval_id=approval.pk, tool=approval.tool, due=_due_text(approval))
    return user


def _due_text(approval: ApprovalRequest) -> str:
    return approval.due_at.isoformat(timespec="seconds") if approval.due_at else "without a deadline"


def _ensure_open(approval: ApprovalRequest) -> None:
    if not approval.is_open:
        raise ApprovalAlreadyDecided(
            f"approval request {approval.pk} is already {approval.status}", status=approval.status
        )


def _ensure_not_waiting_for_an_answer(approval: ApprovalRequest) -> None:
    # Moving it would take it out of `clarification` without its deadline back (hitl.clarification
    # restores both when the requester answers).
    if approval.status == ApprovalStatus.CLARIFICATION:
        raise AwaitingClarification(
            f"approval request {approval.pk} waits for the requester's answer; "
            "claim, release or reassign it once answered"
        )


def _locked(approval_id: int, user: User | AnonymousUser | None) -> ApprovalRequest:
    try:
        approval = (
            ApprovalRequest.objects.select_for_update(of=("self",)).select_related("task__agent").get(pk=approval_id)
        )
    except (ApprovalRequest.DoesNotExist, ValueError, TypeError):
        raise ApprovalNotFound(f"no approval request {approval_id}") from None
    if user is not None and not access.user_may(user, Capability.VIEW, approval):
        raise ApprovalNotFound(f"no approval request {approval_id}")
    return approval


@transaction.atomic(durable=True)
def approval_assign(*, approval_id: int, now: datetime | None = None) -> User | None:
    """Assign an open, unassigned request automatically (see assign_next); returns the
    reviewer, or None when it is assigned already or nobody has a free slot. Raises
    ApprovalNotFound (404), ApprovalAlreadyDecided (409)."""
    approval = _locked(approval_id, None)
    _ensure_open(approval)
    if approval.assignee_id is not None:
        return None
    return assign_next(approval=approval, now=now or timezone.now())


def _refusal_check(approval: ApprovalRequest, user: User | AnonymousUser) -> None:
    from hitl.services import approval_refusal

    refusal = approval_refusal(approval=approval, user=user)
    if refusal is not None:
        raise ApprovalForbidden(refusal.detail, rule=refusal.rule, **refusal.extra)


@transaction.atomic(durable=True)
def approval_claim(*, approval_id: int, user: User | AnonymousUser, now: datetime | None = None) -> ApprovalRequest:
    """``user`` takes an open request for themselves (from another reviewer too, when they hold
    ``review_as_admin``). They must be allowed to decide it and have a free slot.

    Raises ApprovalNotFound (404), ApprovalForbidden (403: the rule, or ``assigned`` when it is
    someone else's), ReviewerAtCapacity (409), ApprovalAlreadyDecided (409)."""
    approval = _locked(approval_id, user)
    _refusal_check(approval, user)
    _ensure_open(approval)
    _ensure_not_waiting_for_an_answer(approval)
    if not isinstance(user, User):  # only an authenticated user passes the refusal check
        raise ApprovalForbidden("sign in to claim a request", rule="role")
    if approval.assignee_id == user.pk:
        return approval
    if approval.assignee_id is not None and not access.user_may(user, Capability.REVIEW_AS_ADMIN):
        raise ApprovalForbidden(f"approval request {approval.pk} is assigned to another reviewer", rule="assigned")
    moment = now or timezone.now()
    profile, _ = ReviewerProfile.objects.get_or_create(user=user)
    profile = ReviewerProfile.objects.select_for_update().get(pk=profile.pk)
    if profile.open_count >= profile.capacity:
        raise ReviewerAtCapacity(f"you already hold {profile.open_count} requests (capacity {profile.capacity})")
    previous = approval.assignee
    slot_free(approval)
    _take(approval, profile, now=moment)
    _history(
        approval,
        ApprovalEventKind.CLAIMED,
        actor=user,
        now=moment,
        previous=previous.get_username() if previous else None,
    )
    audit_record(
        actor=Actor.for_user(user),
        verb="approval.claimed",
        target_type="approval",
        target_id=approval.pk,
        data={"previous": previous.get_username() if previous else None},
    )
    assignment_publish(approval=approval, kind="assigned")
    return approval


@transaction.atomic(durable=True)
def approval_release(*, approval_id: int, user: User | AnonymousUser, now: datetime | None = None) -> ApprovalRequest:
    """The assignee (or a user holding ``review_as_admin``) gives an assigned request back to
    the queue: it is pending and unassigned again.

    Raises ApprovalNotFound (404), ApprovalForbidden (403), ApprovalAlreadyDecided (409)."""
    approval = _locked(approval_id, user)
    _ensure_open(approval)
    _ensure_not_waiting_for_an_answer(approval)
    is_assignee = approval.assignee_id is not None and approval.assignee_id == getattr(user, "pk", None)
    if not is_assignee and not access.user_may(user, Capability.REVIEW_AS_ADMIN, approval):
        raise ApprovalForbidden("only the assignee or an admin can release this request", rule="assigned")
    if approval.assignee_id is None:
        return approval
    moment = now or timezone.now()
    previous = approval.assignee
    slot_free(approval)
    approval.assignee = None
    approval.assigned_at = None
    approval.status = ApprovalStatus.PENDING if approval.escalation_level == 0 else ApprovalStatus.ESCALATED
    approval.save(update_fields=["assignee", "assigned_at", "status"])
    actor = user if isinstance(user, User) else None
    _history(
        approval,
        ApprovalEventKind.RELEASED,
        actor=actor,
        now=moment,
        previous=previous.get_username() if previous else None,
    )
    audit_record(
        actor=Actor.for_user(user),
        verb="approval.released",
        target_type="approval",
        target_id=approval.pk,
        data={"previous": previous.get_username() if previous else None},
    )
    assignment_publish(approval=approval, kind="released")
    return approval


@transaction.atomic(durable=True)
def approval_reassign(
    *, approval_id: int, user: User | AnonymousUser, to_user_id: int, now: datetime | None = None
) -> ApprovalRequest:
    """A user holding ``review_as_admin`` hands an open request to another reviewer, who must be
    allowed to decide it and have a free slot (their availability is theirs to set, not checked).

    Raises ApprovalNotFound (404), ApprovalForbidden (403), ReviewerAtCapacity (409),
    ApprovalAlreadyDecided (409)."""
    approval = _locked(approval_id, user)
    if not access.user_may(user, Capability.REVIEW_AS_ADMIN, approval):
        raise ApprovalForbidden("reassigning needs the admin role", rule="role", required_role="admin")
    _ensure_open(approval)
    _ensure_not_waiting_for_an_answer(approval)
    target = User.objects.filter(pk=to_user_id, is_active=True).first()
    if target is None:
        raise ApprovalForbidden(f"no active user {to_user_id}", rule="assignee")
    from hitl.services import approval_refusal

    refusal = approval_refusal(approval=approval, user=target)
    if refusal is not None:
        raise ApprovalForbidden(f"{target.get_username()} may not decide it: {refusal.detail}", rule=refusal.rule)
    moment = now or timezone.now()
    profile, _ = ReviewerProfile.objects.get_or_create(user=target)
    profile = ReviewerProfile.objects.select_for_update().get(pk=profile.pk)
    if approval.assignee_id == target.pk:
        return approval
    if profile.open_count >= profile.capacity:
        raise ReviewerAtCapacity(f"{target.get_username()} already holds {profile.open_count} requests")
    previous = approval.assignee
    slot_free(approval)
    _take(approval, profile, now=moment)
    actor = user if isinstance(user, User) else None
    data = {"previous": previous.get_username() if previous else None, "assignee": target.get_username()}
    _history(approval, ApprovalEventKind.REASSIGNED, actor=actor, now=moment, **data)
    audit_record(
        actor=Actor.for_user(user), verb="approval.reassigned", target_type="approval", target_id=approval.pk, data=data
    )
    reviewer_notify(
        notice=Notice.ASSIGNED, user=target, approval_id=approval.pk, tool=approval.tool, due=_due_text(approval)
    )
    return approval


def approvals_assign_waiting(*, now: datetime | None = None, limit: int = 100) -> int:
    """Assign open unassigned requests, most urgent first (a reviewer came back or freed a
    slot). Each in its own transaction; a request locked elsewhere is skipped. Returns how many
    were assigned."""
    moment = now or timezone.now()
    assigned = 0
    ids = list(
        ApprovalRequest.objects.filter(
            status__in=(ApprovalStatus.PENDING, ApprovalStatus.ESCALATED), assignee__isnull=True
        )
        .order_by("-priority", "due_at")
        .values_list("pk", flat=True)[:limit]
    )
    for approval_id in ids:
        with transaction.atomic(durable=True):
            approval = (
                ApprovalRequest.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("task")
                .filter(
                    pk=approval_id, assignee__isnull=True, status__in=(ApprovalStatus.PENDING, ApprovalStatus.ESCALATED)
                )
                .first()
            )
            if approval is not None and assign_next(approval=approval, now=moment) is not None:
                assigned += 1
    return assigned
