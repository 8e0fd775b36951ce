"""What an approval request records when the engine opens it: priority, SLA deadline, the
evidence snapshot (its hash in the audit chain) and its history."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from agents.models import TaskPriority
from governance.hashchain import canonical_json
from governance.models import AuditEvent
from hitl.models import ApprovalEvent
from tenants.models import Tenant
from tests.conftest import REFUND_ARGUMENTS, REFUND_TICKET

from .support import refund_agent, refund_waiting


def test_a_request_takes_its_tasks_priority_and_the_sla_deadline_of_that_priority(acme: Tenant) -> None:
    agent = refund_agent(acme)
    urgent = refund_waiting(acme, agent, priority=TaskPriority.CRITICAL)
    routine = refund_waiting(acme, agent, priority=TaskPriority.LOW)
    assert (urgent.get_priority_display(), routine.get_priority_display()) == ("critical", "low")
    assert urgent.due_at is not None and routine.due_at is not None
    assert urgent.due_at - urgent.created_at < timedelta(minutes=16)
    assert timedelta(hours=23) < routine.due_at - routine.created_at < timedelta(hours=25)
    assert urgent.remind_at is not None and urgent.created_at < urgent.remind_at < urgent.due_at
    assert (urgent.status, urgent.assignee, urgent.escalation_level) == ("pending", None, 0)


def test_the_evidence_snapshot_shows_the_action_and_the_steps_and_its_hash_is_audited(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    evidence = request.evidence
    assert evidence["action"] == {"tool": "issue_refund", "arguments": REFUND_ARGUMENTS}
    assert evidence["task"]["input"] == REFUND_TICKET and evidence["task"]["agent"] == "refunds"
    assert [step["action"] for step in evidence["steps"]] == ["classify", "draft"]
    assert evidence["reasoning"] == request.reasoning and evidence["sources"] == []
    assert request.evidence_hash == hashlib.sha256(canonical_json(evidence).encode()).hexdigest()
    event = AuditEvent.objects.get(verb="approval.requested", target_id=str(request.pk))
    assert (event.data["evidence_hash"], event.data["priority"]) == (request.evidence_hash, "medium")


def test_the_history_starts_with_the_opening(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    (opened,) = ApprovalEvent.objects.filter(approval=request)
    assert (opened.kind, opened.data) == ("opened", {"evidence_hash": request.evidence_hash})
