"""The hot path's SQL lives in agents/statements.py, each statement with named placeholders and
one function that builds its parameters. psycopg ignores a parameter the statement does not
name and fails only at run time on a missing one, so these tests check that the names supplied
are exactly the placeholders: for every builder, and for every statement a real task sends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from agents import statements
from agents.effects import effect_plan
from agents.models import Task
from agents.services import task_submit
from agents.statements import (
    CLAIM,
    SNAPSHOT,
    STATEMENTS,
    STEP,
    STEP_WITH_EFFECT,
    Statement,
    claim_params,
    snapshot_params,
    step_params,
    transition,
    transition_params,
)
from agents.tools import TOOLS
from config.connection import connection
from governance.actors import Actor
from governance.services import audit_append_params
from hitl.models import ApprovalRequest
from hitl.services import approval_decide
from tenants.models import Tenant
from tests.agents.helpers_execution import advance_here, resolution_agent, triage_agent, user
from tests.conftest import BILLING_TICKET, REFUND_TICKET, RITA

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _audit() -> dict[str, Any]:
    return audit_append_params(
        actor=Actor.system("test"), verb="agent.step", target_type="task", target_id=1, correlation_id="c"
    )


def _step(effect: dict[str, Any] | None) -> dict[str, Any]:
    return step_params(
        task_id=1,
        attempt=2,
        new_attempt=3,
        deadline=NOW,
        now=NOW,
        index=1,
        action="send_reply",
        arguments="{}",
        result="{}",
        decision="allow",
        reasoning="",
        tokens=0,
        cost_usd=Decimal(0),
        latency_ms=0.0,
        audit=_audit(),
        effect=effect,
    )


def _effect() -> dict[str, Any]:
    _, planned = effect_plan(
        tool=TOOLS["send_reply"],
        idempotency_key="task:1:step:1",
        arguments={"to": "dana@example.com", "subject": "Re: hi", "body": "Hello"},
    )
    assert planned is not None
    return planned.params()


def _transition(values: dict[str, Any]) -> tuple[Statement, dict[str, Any]]:
    params = transition_params(
        task_id=1,
        from_state="queued",
        to_state="assigned",
        reason="",
        actor="system:test",
        attempt=1,
        now=NOW,
        audit=_audit(),
        values=values,
    )
    return transition(tuple(values)), params


BUILT: dict[str, Any] = {
    "snapshot": lambda: (SNAPSHOT, snapshot_params(task_id=1)),
    "claim": lambda: (
        CLAIM,
        claim_params(task_id=1, attempt=1, new_attempt=2, deadline=NOW, now=NOW, state="assigned"),
    ),
    "step": lambda: (STEP, _step(None)),
    "step_with_effect": lambda: (STEP_WITH_EFFECT, _step(_effect())),
    "transition without fields": lambda: _transition({}),
    "transition of state and lease": lambda: _transition(
        {"state": "in_progress", "updated_at": NOW, "attempt": 3, "ack_deadline": NOW}
    ),
}


@pytest.mark.parametrize("case", sorted(BUILT))
def test_each_builder_supplies_exactly_the_placeholders_of_its_statement(case: str) -> None:
    statement, params = BUILT[case]()

    assert set(params) == statement.placeholders, statement.name


def test_every_fixed_statement_has_a_builder_case() -> None:
    built = {BUILT[case]()[0].name for case in BUILT}

    assert {statement.name for statement in STATEMENTS} <= built
    assert {name for name in dir(statements) if isinstance(getattr(statements, name), Statement)} == {
        "CLAIM",
        "SNAPSHOT",
        "STEP",
        "STEP_WITH_EFFECT",
    }


def test_every_statement_a_task_sends_gets_exactly_its_named_parameters(in_acme: Tenant) -> None:
    """A triage task (record step, tool step, finish) and a resolution task through its
    approval gate and the approved refund, run in this process; every statement sent with
    named parameters is checked, the prepared ones included (they pass Django's wrappers)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if isinstance(params, dict):
            sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        triage = task_submit(agent_name=triage_agent().name, input=BILLING_TICKET)
        while advance_here(triage.pk) == "stepped":
            pass
        refund = task_submit(agent_name=resolution_agent().name, input=REFUND_TICKET)
        while advance_here(refund.pk) == "stepped":
            pass
        request = ApprovalRequest.objects.get(task=refund)
        approval_decide(approval_id=request.pk, user=user(RITA), verdict="approve", seen_hash=request.action_hash)
        while advance_here(refund.pk) == "stepped":
            pass

    assert [Task.objects.get(pk=pk).state for pk in (triage.pk, refund.pk)] == ["verified", "verified"]
    mismatched = [
        (sql[:60], sorted(set(params) ^ set(Statement("sent", sql).placeholders)))
        for sql, params in sent
        if set(params) != Statement("sent", sql).placeholders
    ]
    assert mismatched == []
    kinds = {sql for sql, _ in sent}
    assert {statement.sql for statement in STATEMENTS} <= kinds
    assert any(sql.startswith("WITH moved AS (UPDATE agents_task") for sql in kinds)  # a transition
