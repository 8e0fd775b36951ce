"""Usage metering: the work counts itself as it commits (a step in its own statement, a run with
its submit, an approval with its gate), per tenant, day (UTC) and the agent's model, with the
cost priced from the operators' table; the tenant reads its own (API, admin), operators every
tenant's (command, admin)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.test import Client

from agents.events import subscribe
from agents.limits import near_limit_forget
from agents.models import Step, Task
from agents.services import task_submit
from config.connection import connection
from governance.actors import Actor
from governance.models import AuditEvent
from tenants.models import ModelPrice, Tenant, UsageDay
from tenants.usage import price_set, prices_forget, usage_day
from tests.agents.api_support import member_add, signed_in, task_drive
from tests.agents.helpers_execution import resolution_agent, triage_agent, triage_task_after_first_step
from tests.conftest import BILLING_TICKET, REFUND_TICKET, RITA

pytestmark = pytest.mark.django_db
COUNTERS = ("runs", "steps", "tokens_in", "tokens_out", "cost_usd", "approvals")


def _today(tenant: Tenant, model: str = "offline") -> dict[str, Any]:
    found = UsageDay.objects.filter(tenant=tenant, day=usage_day(), model=model).aggregate(
        **{name: Sum(name) for name in COUNTERS}
    )
    return {name: found[name] or 0 for name in COUNTERS}


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {name: after[name] - before[name] for name in COUNTERS}


@pytest.fixture
def priced(in_acme: Tenant) -> Iterator[Tenant]:
    """The offline model at a price, so that its estimated cost is not zero."""
    connection.set_schema_to_public()
    price_set(
        model="offline",
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        actor=Actor.operator("test"),
    )
    connection.set_tenant(in_acme)
    yield in_acme
    prices_forget()  # the test's price is rolled back


def test_a_task_counts_its_run_steps_and_tokens_priced_from_the_table(priced: Tenant) -> None:
    before = _today(priced)

    task = task_drive(task_submit(agent_id=triage_agent().pk, input=BILLING_TICKET), {"verified"})

    steps = Step.objects.filter(task=task)
    tokens = steps.aggregate(t=Sum("tokens"))["t"]
    delta = _delta(before, _today(priced))
    assert (delta["runs"], delta["steps"], delta["approvals"]) == (1, steps.count(), 0)
    assert tokens > 0 and delta["tokens_in"] > 0 and delta["tokens_out"] > 0
    assert delta["tokens_in"] + delta["tokens_out"] == tokens
    expected = (Decimal("2.00") * delta["tokens_in"] + Decimal("8.00") * delta["tokens_out"]) / 1_000_000
    assert delta["cost_usd"] == steps.aggregate(c=Sum("cost_usd"))["c"] == expected.quantize(Decimal("0.000001"))


def test_a_step_that_lost_its_lease_counts_nothing(in_acme: Tenant) -> None:
    task = triage_task_after_first_step()
    before = _today(in_acme)

    Task.objects.filter(pk=task.pk).update(attempt=task.attempt + 1)
    from agents.engine import advance

    assert advance(task_id=task.pk, attempt=task.attempt) == "stale"
    assert _today(in_acme) == before


def test_an_opened_approval_is_counted(in_acme: Tenant) -> None:
    before = _today(in_acme)

    task_drive(task_submit(agent_id=resolution_agent().pk, input=REFUND_TICKET), {"awaiting_approval"})

    delta = _delta(before, _today(in_acme))
    assert (delta["runs"], delta["approvals"]) == (1, 1)


def test_the_command_reports_rows_and_totals_by_tenant_and_period(acme: Tenant, beta: Tenant, capsys: Any) -> None:
    UsageDay.objects.create(tenant=acme, day="2025-03-01", model="gpt-4o-mini", runs=2, steps=7, tokens_in=10)
    UsageDay.objects.create(tenant=acme, day="2025-03-02", model="offline", runs=1, steps=3, cost_usd=Decimal("0.5"))
    UsageDay.objects.create(tenant=beta, day="2025-03-01", model="offline", runs=5)

    call_command("tenant_usage", "--tenant", "acme", "--from", "2025-03-01", "--to", "2025-03-31", "--json")
    report = json.loads(capsys.readouterr().out)
    assert [(r["tenant"], r["day"], r["model"], r["runs"]) for r in report["rows"]] == [
        ("acme", "2025-03-01", "gpt-4o-mini", 2),
        ("acme", "2025-03-02", "offline", 1),
    ]
    assert (report["totals"]["runs"], report["totals"]["steps"], report["totals"]["cost_usd"]) == (3, 10, "0.500000")

    call_command("tenant_usage", "--from", "2025-03-01", "--to", "2025-03-01")
    text = capsys.readouterr().out
    assert "acme" in text and "beta" in text and "2025-03-02" not in text

    with pytest.raises(CommandError, match="'from' must be a date"):
        call_command("tenant_usage", "--from", "March")
    with pytest.raises(CommandError, match="after 'to'"):
        call_command("tenant_usage", "--from", "2025-03-02", "--to", "2025-03-01")
    with pytest.raises(CommandError, match="no tenant"):
        call_command("tenant_usage", "--tenant", "nobody")


def test_the_api_answers_the_tenants_own_usage_and_limits(acme: Tenant, beta: Tenant, acme_client: Client) -> None:
    UsageDay.objects.create(tenant=acme, day="2025-04-01", model="offline", runs=4, steps=9)
    UsageDay.objects.create(tenant=beta, day="2025-04-01", model="offline", runs=40)
    member_add(acme, "viewer-usage@acme.example", "viewer")
    signed_in(acme_client, acme, "viewer-usage@acme.example")

    response = acme_client.get("/api/v1/usage/?from=2025-04-01&to=2025-04-30")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rows"] == [
        {
            "day": "2025-04-01",
            "model": "offline",
            "runs": 4,
            "steps": 9,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost_usd": "0.000000",
            "approvals": 0,
        }
    ]
    limits = {line["limit"]: line for line in body["limits"]}
    assert limits["max_agents"]["max"] == 10 and limits["max_agents"]["used"] >= 0
    assert set(limits) >= {"runs_per_day", "tokens_per_month", "max_pending_approvals", "max_concurrent_tasks"}


@pytest.mark.parametrize(
    "query, field",
    [("from=yesterday", "from"), ("from=2025-05-02&to=2025-05-01", "from"), ("to=2030-13-01", "to"), ("day=1", "day")],
)
def test_the_api_refuses_a_bad_period_naming_it(acme: Tenant, acme_client: Client, query: str, field: str) -> None:
    member_add(acme, "viewer-period@acme.example", "viewer")
    signed_in(acme_client, acme, "viewer-period@acme.example")

    response = acme_client.get(f"/api/v1/usage/?{query}")

    assert response.status_code == 400
    assert (response.json()["code"], response.json()["extra"]["field"]) == ("invalid_period", field)


def test_the_tenant_admin_shows_usage_under_the_limits(acme: Tenant, beta: Tenant, acme_client: Client) -> None:
    UsageDay.objects.create(tenant=acme, day="2025-06-01", model="acme-model", runs=3)
    UsageDay.objects.create(tenant=beta, day="2025-06-01", model="beta-model", runs=3)
    signed_in(acme_client, acme, RITA)  # a reviewer: usage is everyone's to read

    response = acme_client.get("/admin/agents/tenantusage/")
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    page = response.content.decode()

    assert "acme-model" in page and "beta-model" not in page
    assert "limit-max_concurrent_tasks" in page and "limit-tokens_per_month" in page


def test_operators_see_every_tenants_usage_and_edit_prices_audited(
    acme: Tenant, beta: Tenant, public_client: Client
) -> None:
    UsageDay.objects.create(tenant=acme, day="2025-07-01", model="acme-model", runs=3)
    UsageDay.objects.create(tenant=beta, day="2025-07-01", model="beta-model", runs=3)
    public_client.force_login(User.objects.get(username="otto@vigil.example"))

    page = public_client.get("/admin/tenants/usageday/").content.decode()
    assert "acme-model" in page and "beta-model" in page

    response = public_client.post(
        "/admin/tenants/modelprice/add/",
        {"model": "house-model", "input_per_million": "1.5", "output_per_million": "4", "_save": "Save"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    price = ModelPrice.objects.get(model="house-model")
    assert (price.input_per_million, price.output_per_million) == (Decimal("1.5"), Decimal("4"))
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    assert (event.verb, event.target_id, event.actor_label) == ("price.created", "house-model", "otto@vigil.example")


def test_near_a_limit_a_live_event_is_published_once_per_period(
    in_acme: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    agent = triage_agent()
    runs_today = sum(UsageDay.objects.filter(tenant=in_acme, day=usage_day()).values_list("runs", flat=True))
    in_acme.limit_overrides = {"runs_per_day": runs_today + 10}
    in_acme.save(update_fields=["limit_overrides"])
    near_limit_forget(schema="acme")
    heard: list[dict[str, Any]] = []
    unsubscribe = subscribe(lambda event: heard.append(event) if event["type"] == "usage.near_limit" else None)
    try:
        for _ in range(10):
            with django_capture_on_commit_callbacks() as after_commit:
                task_submit(agent_id=agent.pk, input=BILLING_TICKET)
            # As if committed, but without sending the tasks: no worker here.
            for callback in after_commit:
                if callback.__name__ == "mark_and_publish":
                    with django_capture_on_commit_callbacks(execute=True):
                        callback()
    finally:
        unsubscribe()
        near_limit_forget(schema="acme")

    maximum = runs_today + 10
    first_near = max(runs_today + 1, math.ceil(maximum * 0.8))
    assert [(e["limit"], e["used"], e["max"], e["schema"]) for e in heard] == [
        ("runs_per_day", first_near, maximum, "acme")
    ]
