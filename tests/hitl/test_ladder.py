"""The SLA ladder on a controlled clock: a reminder at half the SLA, escalation at the breach
(priority raised, admin tier, reassigned), the terminal action at the next breach; each step
exactly once, also when two sweeps overlap."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.core import mail
from django.db import connections

from agents.models import Step, Task
from governance.models import AuditEvent
from hitl.ladder import approvals_sla_sweep
from hitl.models import ApprovalRequest
from hitl.sla import Ladder, TerminalAction
from hitl.tasks import sla_sweep
from tenants.models import Tenant
from tests.agents.api_support import task_drive
from tests.agents.helpers_execution import unique, use_tenant

from .support import profile, refund_agent, refund_opened_without_engine, refund_waiting, reviewer

SECOND = timedelta(seconds=1)


def _kinds(request: ApprovalRequest) -> list[str]:
    return list(request.history.values_list("kind", flat=True))


def _at(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment + SECOND


def test_the_assignee_is_reminded_once_at_half_the_sla(
    acme: Tenant, django_capture_on_commit_callbacks: Callable[..., object]
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    mail.outbox.clear()
    assert approvals_sla_sweep(now=_at(request.remind_at) - 2 * SECOND).reminded == 0
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        assert approvals_sla_sweep(now=_at(request.remind_at)).reminded == 1
        assert approvals_sla_sweep(now=_at(request.remind_at) + SECOND).reminded == 0
    assert _kinds(request) == ["opened", "assigned", "reminded"]
    (sent,) = mail.outbox
    assert sent.to == [ann.email] and sent.subject.startswith("Reminder")
    request.refresh_from_db()
    assert (request.status, request.assignee) == ("assigned", ann)


def test_a_breach_escalates_once_to_the_admin_tier_with_a_higher_priority(
    acme: Tenant, django_capture_on_commit_callbacks: Callable[..., object]
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    boss = reviewer(acme, "boss@acme.example", role="admin")
    mail.outbox.clear()
    breach = _at(request.due_at)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        swept = approvals_sla_sweep(now=breach)
        again = approvals_sla_sweep(now=breach)
    assert (swept.escalated, again.escalated, again.closed) == (1, 0, 0)
    request.refresh_from_db()
    assert (request.escalation_level, request.get_priority_display(), request.required_role) == (1, "high", "admin")
    assert (request.status, request.assignee, request.breached_at) == ("assigned", boss, breach)
    assert request.due_at == breach + timedelta(minutes=60)
    assert (profile(ann).open_count, profile(boss).open_count) == (0, 1)
    assert _kinds(request) == ["opened", "assigned", "reminded", "escalated", "assigned"]
    assert AuditEvent.objects.filter(verb="approval.escalated", target_id=str(request.pk)).count() == 1
    breached = [m for m in mail.outbox if "missed its deadline" in m.subject]
    assert [m.to for m in breached] == [[boss.email]]


def test_the_last_breach_expires_the_request_and_the_task_goes_on_without_the_refund(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    approvals_sla_sweep(now=_at(request.due_at))
    request.refresh_from_db()
    assert (request.escalation_level, request.status) == (1, "escalated")
    final = _at(request.due_at)
    assert approvals_sla_sweep(now=final).closed == 1
    assert approvals_sla_sweep(now=final).closed == 0
    request.refresh_from_db()
    assert (request.status, request.decided_at, request.decided_by) == ("expired", final, None)
    assert AuditEvent.objects.get(verb="approval.expired", target_id=str(request.pk)).actor_label == "sla"
    task = task_drive(Task.objects.get(pk=request.task_id), {"verified", "escalated", "completed"})
    refund_step = Step.objects.get(task=task, index=request.step_index)
    assert refund_step.result is not None and refund_step.result["rejected"] is True


def test_an_auto_reject_ladder_rejects_at_the_first_breach(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    ladder = Ladder(escalations=0, terminal=TerminalAction.AUTO_REJECT)
    assert approvals_sla_sweep(now=_at(request.due_at), ladder=ladder).closed == 1
    request.refresh_from_db()
    assert (request.status, request.escalation_level) == ("rejected", 0)
    assert _kinds(request)[-1] == "rejected"
    assert Task.objects.get(pk=request.task_id).state == "in_progress"


def test_a_decided_request_takes_no_ladder_step(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    ApprovalRequest.objects.filter(pk=request.pk).update(status="approved")
    swept = approvals_sla_sweep(now=_at(request.due_at) + timedelta(days=2))
    assert (swept.reminded, swept.escalated, swept.closed) == (0, 0, 0)


def test_the_beat_job_sweeps_every_active_tenant(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    ApprovalRequest.objects.filter(pk=request.pk).update(remind_at=request.created_at)
    assert sla_sweep() >= 1
    use_tenant("acme")
    assert _kinds(request) == ["opened", "reminded"]


def test_two_overlapping_sweeps_take_each_step_once(django_db_setup: None, committed: None) -> None:
    tenant = use_tenant("acme")
    agent = refund_agent(tenant, unique("ladder"))
    requests = [refund_opened_without_engine(agent) for _ in range(3)]
    breach = max(_at(r.due_at) for r in requests)
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def sweep() -> None:
        try:
            use_tenant("acme")
            start.wait()
            approvals_sla_sweep(now=breach)
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    use_tenant("acme")
    assert failures == []
    for request in requests:
        assert _kinds(request) == ["opened", "reminded", "escalated"]
        request.refresh_from_db()
        assert (request.escalation_level, request.status) == (1, "escalated")
        assert AuditEvent.objects.filter(verb="approval.escalated", target_id=str(request.pk)).count() == 1
