"""Clarification (F-HITL-6): a reviewer asks the requester of an open request a question, the
task keeps waiting, the requester answers, the request goes back to the reviewer's queue and a
decision resumes the run as usual.

While the question is open the request is ``clarification`` and its SLA clock is stopped: the
wait is on the requester, so the deadline and the reminder are taken off the request (the
ladder passes it by) and what was left of each is kept on the question; the answer restarts
both from that point. The request keeps its assignee, who sees it in their queue waiting, but
gives the slot back for other work; the answer hands it back to them when they still may
decide it and have a free slot, otherwise to the least-loaded eligible reviewer.

Who: a question is asked by someone who may decide the request (hitl.services.approval_refusal);
it is answered by the task's requester, or by an admin (``review_as_admin`` on the agent). A
decision taken while a question is open is a decision like any other: the question stays
unanswered in the history. Both steps are audited and the other side is told after commit, by
a live event and an e-mail through Django's mail backend."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from agents.events import publish
from config.errors import VigilError
from governance import access
from governance.access import Capability
from governance.actors import Actor
from governance.services import audit_record
from hitl.assignment import assign_next, eligible_profiles, slot_free
from hitl.exceptions import ApprovalAlreadyDecided, ApprovalForbidden, ApprovalNotFound
from hitl.models import (
    OPEN_STATUSES,
    ApprovalEvent,
    ApprovalEventKind,
    ApprovalRequest,
    ApprovalStatus,
    Clarification,
    ReviewerProfile,
)
from hitl.notify import Notice, reviewer_notify

logger = logging.getLogger(__name__)

TEXT_MAX = 2000


class ClarificationInvalid(VigilError):
    """An empty (or too long) question or answer."""

    code = "clarification_invalid"
    status = 400


class ClarificationOpen(VigilError):
    """The request already waits for the answer to a question."""

    code = "clarification_open"
    status = 409


class ClarificationNotOpen(VigilError):
    """No question of this request waits for an answer."""

    code = "clarification_not_open"
    status = 409


def _text(value: str, *, name: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ClarificationInvalid(f"the {name} is empty", fields={name: "required"})
    if len(text) > TEXT_MAX:
        raise ClarificationInvalid(
            f"the {name} is longer than {TEXT_MAX} characters", fields={name: f"at most {TEXT_MAX} characters"}
        )
    return text


def _locked(approval_id: int, user: User | AnonymousUser) -> ApprovalRequest:
    try:
        approval = (
            ApprovalRequest.objects.select_for_update(of=("self",))
            .select_related("task__agent", "task__created_by", "assignee")
            .get(pk=approval_id)
        )
    except (ApprovalRequest.DoesNotExist, ValueError, TypeError):
        raise ApprovalNotFound(f"no approval request {approval_id}") from None
    if not access.user_may(user, Capability.VIEW, approval):
        raise ApprovalNotFound(f"no approval request {approval_id}")
    return approval


def _ensure_open(approval: ApprovalRequest) -> None:
    if approval.status not in OPEN_STATUSES:
        raise ApprovalAlreadyDecided(
            f"approval request {approval.pk} is already {approval.status}", status=approval.status
        )


@transaction.atomic(durable=True)
def clarification_ask(
    *, approval_id: int, user: User | AnonymousUser, question: str, now: datetime | None = None
) -> Clarification:
    """``user``, who may decide the open request ``approval_id``, asks its requester
    ``question``: the request waits in ``clarification`` with its SLA clock stopped.

    Raises ApprovalNotFound (404), ApprovalForbidden (403, the rule that keeps the user from
    deciding it), ClarificationInvalid (400), ApprovalAlreadyDecided (409), ClarificationOpen
    (409: a question already waits)."""
    from hitl.services import approval_refusal

    approval = _locked(approval_id, user)
    refusal = approval_refusal(approval=approval, user=user)
    if refusal is not None:
        raise ApprovalForbidden(refusal.detail, rule=refusal.rule, **refusal.extra)
    text = _text(question, name="question")
    _ensure_open(approval)
    if (
        approval.status == ApprovalStatus.CLARIFICATION
        or approval.clarifications.filter(answered_at__isnull=True).exists()
    ):
        raise ClarificationOpen(f"approval request {approval.pk} already waits for an answer")
    moment = now or timezone.now()
    asker = user if isinstance(user, User) else None
    clarification = Clarification.objects.create(
        approval=approval,
        question=text,
        asked_by=asker,
        asked_at=moment,
        due_left=approval.due_at - moment if approval.due_at else None,
        remind_left=approval.remind_at - moment if approval.remind_at and approval.reminded_at is None else None,
    )
    slot_free(approval)
    approval.status = ApprovalStatus.CLARIFICATION
    approval.due_at = None
    approval.remind_at = None
    approval.save(update_fields=["status", "due_at", "remind_at"])
    data = {"clarification": clarification.pk, "question": text}
    ApprovalEvent.objects.create(
        approval=approval, kind=ApprovalEventKind.ASKED, actor=asker, data=data, created_at=moment
    )
    audit_record(
        actor=Actor.for_user(user),
        verb="approval.clarification_asked",
        target_type="approval",
        target_id=approval.pk,
        data=data,
    )
    requester = approval.task.created_by
    publish(
        "approval.clarification_asked",
        approval_id=approval.pk,
        task_id=approval.task_id,
        agent_id=approval.task.agent_id,
        user_id=requester.pk if requester else None,
    )
    if requester is not None and requester.email:
        _mail_after_commit(
            email=requester.email,
            subject=f"A reviewer asks about your task {approval.task_id} ({approval.tool})",
            body=(
                f"{asker.get_username() if asker else 'A reviewer'} asks, before deciding approval request "
                f"{approval.pk}:\n\n{text}\n\nAnswer it with POST /api/v1/hitl/{approval.pk}/answer/ "
                '{"answer": "..."}; the task waits for your answer.\n'
            ),
            approval_id=approval.pk,
        )
    return clarification


def answer_refusal(*, approval: ApprovalRequest, user: User | AnonymousUser) -> str | None:
    """Why ``user`` may not answer the questions of ``approval`` (None when they may): only the
    task's requester, or an admin who reviews the agent."""
    requester_id = approval.task.created_by_id
    if requester_id is not None and requester_id == getattr(user, "pk", None):
        return None
    if access.user_may(user, Capability.REVIEW_AS_ADMIN, approval):
        return None
    return "only the task's requester or an admin can answer its questions"


@transaction.atomic(durable=True)
def clarification_answer(
    *, approval_id: int, user: User | AnonymousUser, answer: str, now: datetime | None = None
) -> Clarification:
    """The requester (or an admin) answers the open question of ``approval_id``: the SLA clock
    restarts with what was left, and the request goes back to the queue (see the module
    docstring).

    Raises ApprovalNotFound (404), ApprovalForbidden (403, rule ``requester``),
    ClarificationInvalid (400), ApprovalAlreadyDecided (409), ClarificationNotOpen (409)."""
    approval = _locked(approval_id, user)
    refusal = answer_refusal(approval=approval, user=user)
    if refusal is not None:
        raise ApprovalForbidden(refusal, rule="requester")
    text = _text(answer, name="answer")
    _ensure_open(approval)
    clarification = approval.clarifications.select_for_update().filter(answered_at__isnull=True).first()
    if clarification is None:
        raise ClarificationNotOpen(f"approval request {approval.pk} has no open question")
    moment = now or timezone.now()
    answerer = user if isinstance(user, User) else None
    clarification.answer = text
    clarification.answered_by = answerer
    clarification.answered_at = moment
    clarification.save(update_fields=["answer", "answered_by", "answered_at"])
    fields = ["due_at", "remind_at"]
    approval.due_at = moment + clarification.due_left if clarification.due_left is not None else approval.due_at
    if clarification.remind_left is not None:
        approval.remind_at = moment + clarification.remind_left
    approval.save(update_fields=fields)
    data = {"clarification": clarification.pk, "answer": text}
    ApprovalEvent.objects.create(
        approval=approval, kind=ApprovalEventKind.ANSWERED, actor=answerer, data=data, created_at=moment
    )
    audit_record(
        actor=Actor.for_user(user),
        verb="approval.clarification_answered",
        target_type="approval",
        target_id=approval.pk,
        data=data,
    )
    if approval.status == ApprovalStatus.CLARIFICATION:
        _back_to_queue(approval, now=moment)
    asker = clarification.asked_by
    publish(
        "approval.clarification_answered",
        approval_id=approval.pk,
        task_id=approval.task_id,
        agent_id=approval.task.agent_id,
        user_id=asker.pk if asker else None,
    )
    if asker is not None and asker.email:
        _mail_after_commit(
            email=asker.email,
            subject=f"Your question on approval request {approval.pk} ({approval.tool}) is answered",
            body=(
                f"You asked:\n\n{clarification.question}\n\n"
                f"{answerer.get_username() if answerer else 'The requester'} answers:\n\n{text}\n\n"
                f"Decide it in the admin: /admin/hitl/approvalrequest/{approval.pk}/decide/\n"
            ),
            approval_id=approval.pk,
        )
    return clarification


def _back_to_queue(approval: ApprovalRequest, *, now: datetime) -> None:
    """The request's assignee takes it back when they still may decide it and have a free slot
    (their profile row locked, as hitl.assignment locks it); otherwise it waits in the queue for
    the least-loaded eligible reviewer."""
    keeper = approval.assignee_id
    profile = None
    if keeper is not None:
        profile = eligible_profiles(approval=approval).filter(user_id=keeper).select_for_update(of=("self",)).first()
    if profile is not None:
        ReviewerProfile.objects.filter(pk=profile.pk).update(open_count=F("open_count") + 1, last_assigned_at=now)
        approval.status = ApprovalStatus.ASSIGNED
        approval.assigned_at = now
        approval.save(update_fields=["status", "assigned_at"])
        reviewer_notify(
            notice=Notice.ASSIGNED,
            user=approval.assignee,
            approval_id=approval.pk,
            tool=approval.tool,
            due=approval.due_at.isoformat(timespec="seconds") if approval.due_at else "without a deadline",
        )
        return
    approval.status = ApprovalStatus.PENDING if approval.escalation_level == 0 else ApprovalStatus.ESCALATED
    approval.assignee = None
    approval.assigned_at = None
    approval.save(update_fields=["status", "assignee", "assigned_at"])
    assign_next(approval=approval, now=now)


def _mail_after_commit(*, email: str, subject: str, body: str, approval_id: int) -> None:
    def send() -> None:
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
        except Exception:  # a mail server that is down must not undo or repeat a committed step
            logger.exception("clarification.notify_failed", extra={"approval_id": approval_id})

    transaction.on_commit(send)


def clarifications_for(
    *, user: User | AnonymousUser, mine: bool = False, answered: bool | None = False
) -> QuerySet[Clarification]:
    """Questions on the requests ``user`` may see, newest first. ``mine``: only those on tasks
    ``user`` requested. ``answered``: False for the open ones (on requests still open), True
    for the answered ones, None for all."""
    requests = access.scoped(user, Capability.VIEW, ApprovalRequest.objects.all())
    query = Clarification.objects.filter(approval__in=requests).select_related(
        "approval__task__agent", "asked_by", "answered_by"
    )
    if mine:
        query = query.filter(approval__task__created_by_id=getattr(user, "pk", None))
    if answered is False:
        query = query.filter(answered_at__isnull=True, approval__status__in=OPEN_STATUSES)
    elif answered is True:
        query = query.filter(answered_at__isnull=False)
    return query.order_by("-asked_at", "-id")
