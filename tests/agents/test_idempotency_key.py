"""``POST /api/v1/agents/{id}/execute/`` with an ``Idempotency-Key`` header: a retry with the
same key (in the same tenant, within 24 hours) answers with the first task and creates
nothing; the same key with another body is refused with 422 naming the first task.

Most tests run in the rolled-back test transaction (nothing is sent to a worker); the race
between two submits with one key commits, on connections of its own.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from agents.models import Task
from agents.services import task_submit
from config.connection import connection
from governance.models import AuditEvent
from tenants.models import Tenant
from tests.agents.helpers_execution import database_connect, triage_agent, unique, use_tenant, wait_until
from tests.conftest import ALICE, BILLING_TICKET, BOB

from .api_support import agent_make, signed_in

OTHER_TICKET = {"text": "Where is my parcel? It was due on Monday", "customer_email": "dana@example.com"}


@pytest.fixture
def alice(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, ALICE)


def _execute(client: Client, agent: str, body: dict[str, Any], key: str | None) -> Any:
    headers: dict[str, Any] = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(f"/api/v1/agents/{agent}/execute/", body, content_type="application/json", **headers)


def _tasks_of(tenant: Tenant, agent: str) -> list[int]:
    connection.set_tenant(tenant)
    return list(Task.objects.filter(agent__name=agent).order_by("pk").values_list("pk", flat=True))


def test_a_retry_with_the_same_key_returns_the_first_task_and_creates_none(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "desk")
    first = _execute(alice, "desk", {"input": BILLING_TICKET, "priority": 3}, "order-7781-attempt")
    again = _execute(alice, "desk", {"input": BILLING_TICKET, "priority": 3}, "order-7781-attempt")

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == f"/api/v1/tasks/{first.json()['id']}/"
    assert _tasks_of(acme, "desk") == [first.json()["id"]]
    assert Task.objects.get(pk=first.json()["id"]).idempotency_key == "order-7781-attempt"
    assert AuditEvent.objects.filter(verb="task.submitted", target_id=str(first.json()["id"])).count() == 1


def test_the_same_key_with_another_body_is_refused_with_422_naming_the_first_task(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "desk")
    first = _execute(alice, "desk", {"input": BILLING_TICKET}, "k-1")

    other_input = _execute(alice, "desk", {"input": OTHER_TICKET}, "k-1")
    other_priority = _execute(alice, "desk", {"input": BILLING_TICKET, "priority": 4}, "k-1")

    for refused in (other_input, other_priority):
        assert refused.status_code == 422
        body = refused.json()
        assert body["code"] == "idempotency_key_reused"
        assert "k-1" in body["detail"]
        assert body["extra"] == {"task": first.json()["id"]}
    assert _tasks_of(acme, "desk") == [first.json()["id"]]


def test_the_same_key_for_another_agent_is_refused(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "desk")
    agent_make(acme, "counter")
    first = _execute(alice, "desk", {"input": BILLING_TICKET}, "k-2")

    refused = _execute(alice, "counter", {"input": BILLING_TICKET}, "k-2")

    assert (refused.status_code, refused.json()["code"]) == (422, "idempotency_key_reused")
    assert _tasks_of(acme, "counter") == [] and _tasks_of(acme, "desk") == [first.json()["id"]]


def test_requests_with_different_keys_or_no_key_each_create_a_task(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "desk")
    ids = {_execute(alice, "desk", {"input": BILLING_TICKET}, key).json()["id"] for key in ("a", "b", None, None)}

    assert len(ids) == 4
    assert sorted(_tasks_of(acme, "desk")) == sorted(ids)


def test_a_key_is_kept_per_tenant(acme: Tenant, beta: Tenant, alice: Client, beta_client: Client) -> None:
    agent_make(acme, "desk")
    agent_make(beta, "desk")
    bob = signed_in(beta_client, beta, BOB)

    in_acme = _execute(alice, "desk", {"input": BILLING_TICKET}, "shared-key")
    in_beta = _execute(bob, "desk", {"input": OTHER_TICKET}, "shared-key")

    assert (in_acme.status_code, in_beta.status_code) == (202, 202)
    assert _tasks_of(acme, "desk") == [in_acme.json()["id"]]
    assert _tasks_of(beta, "desk") == [in_beta.json()["id"]]


def test_a_key_older_than_24_hours_is_forgotten_and_the_request_creates_a_new_task(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "desk")
    first = _execute(alice, "desk", {"input": BILLING_TICKET}, "nightly-1").json()["id"]
    connection.set_tenant(acme)
    Task.objects.filter(pk=first).update(created_at=timezone.now() - timedelta(hours=24, minutes=1))

    again = _execute(alice, "desk", {"input": OTHER_TICKET}, "nightly-1")

    assert again.status_code == 202
    assert again.json()["id"] != first
    assert _tasks_of(acme, "desk") == [first, again.json()["id"]]
    assert Task.objects.get(pk=first).idempotency_key is None
    assert Task.objects.get(pk=again.json()["id"]).idempotency_key == "nightly-1"


@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9", "line\nbreak"])
def test_an_invalid_key_is_refused_with_400_naming_the_header(acme: Tenant, alice: Client, key: str) -> None:
    agent_make(acme, "desk")

    response = _execute(alice, "desk", {"input": BILLING_TICKET}, key)

    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {"idempotency_key": "must be 1 to 200 printable ASCII characters"}
    assert _tasks_of(acme, "desk") == []


def test_a_submit_racing_another_with_the_same_key_returns_the_winners_task(
    committed: None, celery_env: dict[str, str]
) -> None:
    """Both find no task with the key; the second insert waits on the unique index until the
    first commits, then answers with the first's task instead of failing."""
    use_tenant("acme")
    agent = triage_agent()
    key = unique("race")
    inserted, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def winner() -> None:
        try:
            use_tenant("acme")
            with transaction.atomic():
                results["winner"] = Task.objects.create(agent=agent, input=BILLING_TICKET, idempotency_key=key).pk
                inserted.set()
                release.wait(20)
        finally:
            connection.close()

    def loser() -> None:
        try:
            use_tenant("acme")
            results["loser"] = task_submit(agent_id=agent.pk, input=BILLING_TICKET, idempotency_key=key).pk
        except BaseException as exc:
            results["error"] = exc
        finally:
            connection.close()

    first = threading.Thread(target=winner, daemon=True)
    first.start()
    assert inserted.wait(20)
    second = threading.Thread(target=loser, daemon=True)
    second.start()

    def waiting_on_the_key() -> bool:
        with database_connect(autocommit=True) as conn:
            return bool(
                conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event = 'transactionid' AND query LIKE 'INSERT INTO \"agents_task\"%'"
                ).fetchone()
            )

    wait_until(waiting_on_the_key, what="the second insert to wait for the first")
    release.set()
    first.join(20)
    second.join(20)

    assert "error" not in results, results.get("error")
    assert results["loser"] == results["winner"]
    assert list(Task.objects.filter(idempotency_key=key).values_list("pk", flat=True)) == [results["winner"]]
