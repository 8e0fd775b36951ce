"""The end of a policy's ladder on a controlled clock: escalation steps as the policy lists them,
then its terminal action — expire, auto-reject, or auto-approve for low-risk actions only —
each taken exactly once, also when two sweeps overlap."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connections, transaction

from agents.models import Agent, AutomationLevel, OutboxMessage, Step, Task, TaskState
from agents.services import agent_create
from config.connection import connection
from governance.actors import Actor
from governance.models import AuditEvent
from hitl.ladder import approvals_sla_sweep
from hitl.models import ApprovalRequest
from hitl.policies import policy_create
from hitl.services import approval_open
from hitl.sla import Ladder, TerminalAction
from tenants.models import Tenant
from tests.agents.api_support import agent_make, task_drive, task_make
from tests.agents.helpers_execution import unique, use_tenant
from tests.conftest import ALICE, BILLING_TICKET

from .support import refund_agent, refund_waiting
from .test_quorum import COMMITTED_AGENT

SECOND = timedelta(seconds=1)


def _policy(content: dict[str, Any]) -> None:
    policy_create(name=unique("ladder"), content=content, user=User.objects.get(username=ALICE))


def _after(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment + SECOND


def _kinds(request: ApprovalRequest) -> list[str]:
    return list(request.history.values_list("kind", flat=True))


def _manual_triage(tenant: Tenant, name: str = "manual-triage") -> Agent:
    """A manual agent: its replies (level 2, low risk) wait for a reviewer under the built-in rules."""
    return agent_make(tenant, name, "triage", automation_level=AutomationLevel.MANUAL)


def test_a_policy_ladder_escalates_without_raising_the_priority_then_auto_rejects(acme: Tenant) -> None:
    connection.set_tenant(acme)
    _policy(
        {
            "conditions": {"tools": ["issue_refund"]},
            "sla_minutes": {"medium": 10},
            "ladder": {"steps": [{"role": "admin", "raise_priority": False}]},
            "terminal": "auto_reject",
        }
    )
    request = refund_waiting(acme, refund_agent(acme))
    assert request.due_at is not None and request.due_at - request.created_at < timedelta(minutes=11)
    breach = _after(request.due_at)
    assert approvals_sla_sweep(now=breach).escalated == 1
    request.refresh_from_db()
    assert (request.escalation_level, request.get_priority_display(), request.required_role) == (1, "medium", "admin")
    assert request.due_at == breach + timedelta(minutes=10)
    final = _after(request.due_at)
    assert approvals_sla_sweep(now=final).closed == 1
    assert approvals_sla_sweep(now=final).closed == 0
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decided_at) == ("rejected", None, final)
    assert _kinds(request) == ["opened", "reminded", "escalated", "reminded", "rejected"]
    rejected = AuditEvent.objects.get(verb="approval.rejected", target_id=str(request.pk))
    assert rejected.actor_label == "sla" and rejected.data["policy_version_id"] == request.policy_version_id
    task = task_drive(Task.objects.get(pk=request.task_id), {"verified", "escalated", "completed"})
    assert Step.objects.get(task=task, index=request.step_index).decision == "rejected"


def test_a_policy_with_no_ladder_steps_expires_at_the_first_breach(acme: Tenant) -> None:
    connection.set_tenant(acme)
    _policy({"conditions": {"tools": ["issue_refund"]}, "terminal": "expire"})
    request = refund_waiting(acme, refund_agent(acme))
    swept = approvals_sla_sweep(now=_after(request.due_at))
    assert (swept.escalated, swept.closed) == (0, 1)
    request.refresh_from_db()
    assert (request.status, request.escalation_level) == ("expired", 0)


def test_a_low_risk_reply_is_auto_approved_once_and_runs(acme: Tenant) -> None:
    connection.set_tenant(acme)
    _policy({"conditions": {"tools": ["send_reply"], "privilege_max": 2}, "terminal": "auto_approve"})
    task = task_drive(task_make(acme, _manual_triage(acme), BILLING_TICKET), {"awaiting_approval"})
    request = ApprovalRequest.objects.get(task=task)
    assert (request.tool, request.privilege_level) == ("send_reply", 2)
    breach = _after(request.due_at)
    assert approvals_sla_sweep(now=breach).closed == 1
    assert approvals_sla_sweep(now=breach + SECOND).closed == 0
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decision_note) == (
        "approved",
        None,
        "no decision within the SLA (auto_approve)",
    )
    assert _kinds(request)[-1] == "approved"
    approved = AuditEvent.objects.get(verb="approval.approved", target_id=str(request.pk))
    assert approved.actor_label == "sla" and approved.data["terminal"] == "auto_approve"
    done = task_drive(Task.objects.get(pk=task.pk), {"verified", "escalated"})
    assert Step.objects.get(task=done, index=request.step_index).decision == "approved"
    assert OutboxMessage.objects.filter(effect__task=done, kind="reply").count() == 1


def test_a_risky_action_is_never_auto_approved_whatever_the_ladder_says(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))  # issue_refund: level 3
    ladder = Ladder(escalations=0, terminal=TerminalAction.AUTO_APPROVE)
    assert approvals_sla_sweep(now=_after(request.due_at), ladder=ladder).closed == 1
    request.refresh_from_db()
    assert request.status == "expired"
    expired = AuditEvent.objects.get(verb="approval.expired", target_id=str(request.pk))
    assert (expired.data["terminal"], expired.data["ladder_terminal"]) == ("expire", "auto_approve")
    assert not AuditEvent.objects.filter(verb="approval.approved", target_id=str(request.pk)).exists()


def _lookup_opened_without_engine(agent: Agent) -> ApprovalRequest:
    """A low-risk request (an order lookup, level 1) opened as the engine opens one, without
    running the engine (see support.refund_opened_without_engine)."""
    with transaction.atomic():
        task = Task.objects.create(agent=agent, input=BILLING_TICKET, state=TaskState.AWAITING_APPROVAL)
        return approval_open(
            task=task,
            step_index=1,
            tool="lookup_order",
            level=1,
            arguments={"order_id": "AB1234"},
            reasoning="check the order",
            required_role="reviewer",
            actor=Actor.system("test"),
        )


def test_two_overlapping_sweeps_auto_approve_each_request_once(django_db_setup: None, committed: None) -> None:
    use_tenant("acme")
    # The committed agent the quorum tests share (the tenant's agents are limited); its replies
    # auto-approve at the breach, its refunds need two approvers (tests/hitl/test_quorum.py).
    agent = Agent.objects.filter(name=COMMITTED_AGENT).first() or agent_create(
        name=COMMITTED_AGENT, blueprint="resolution", privilege_ceiling=3
    )
    _policy(
        {
            "conditions": {"agents": [agent.name], "tools": ["lookup_order"], "privilege_max": 2},
            "terminal": "auto_approve",
        }
    )
    requests = [_lookup_opened_without_engine(agent) for _ in range(3)]
    assert all(r.policy_version_id is not None for r in requests)
    breach = max(_after(r.due_at) for r in requests)
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
    # A row one sweep holds is skipped by the other (SKIP LOCKED), so both may pass one by; the
    # next beat run takes it. What never happens is a step taken twice.
    approvals_sla_sweep(now=breach)
    for request in requests:
        assert _kinds(request) == ["opened", "reminded", "approved"]
        request.refresh_from_db()
        assert request.status == "approved"
        assert AuditEvent.objects.filter(verb="approval.approved", target_id=str(request.pk)).count() == 1
        resumed = request.task.events.filter(from_state="awaiting_approval", to_state="in_progress")
        assert resumed.count() == 1
