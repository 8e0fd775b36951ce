"""Notifications to reviewers (new assignment, reminder, breach): a live event and an e-mail
through Django's mail backend, each sent once, after the transaction that caused it commits."""

from __future__ import annotations

import logging
from enum import StrEnum

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction

from agents.events import publish

logger = logging.getLogger(__name__)


class Notice(StrEnum):
    ASSIGNED = "assigned"
    REMINDER = "reminder"
    BREACHED = "breached"


_SUBJECTS: dict[Notice, str] = {
    Notice.ASSIGNED: "Approval request {id} is assigned to you: {tool}",
    Notice.REMINDER: "Reminder: approval request {id} ({tool}) is due {due}",
    Notice.BREACHED: "Approval request {id} ({tool}) missed its deadline and was escalated to you",
}


def _send(*, notice: Notice, email: str, approval_id: int, tool: str, due: str) -> None:
    subject = _SUBJECTS[notice].format(id=approval_id, tool=tool, due=due)
    body = f"{subject}.\n\nOpen it in the admin: /admin/hitl/approvalrequest/{approval_id}/decide/\n"
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
    except Exception:  # a mail server that is down must not undo or repeat a committed step
        logger.exception("approval.notify_failed", extra={"approval_id": approval_id, "notice": notice.value})


def reviewer_notify(*, notice: Notice, user: User | None, approval_id: int, tool: str, due: str) -> None:
    """Inside the caller's transaction: after it commits, publish the live event and e-mail
    ``user`` (when they have an address). Nothing is sent if the transaction rolls back."""
    if user is None:
        return
    publish(f"approval.{notice.value}", approval_id=approval_id, user_id=user.pk, tool=tool, due=due)
    email = user.email
    if email:
        transaction.on_commit(lambda: _send(notice=notice, email=email, approval_id=approval_id, tool=tool, due=due))
