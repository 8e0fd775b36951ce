"""GET /api/v1/governance/audit/: filters, cursor pagination, who may read, bad filters."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from guardian.shortcuts import assign_perm

from agents.models import Agent
from config.connection import connection
from governance.actors import Actor
from governance.models import AuditEvent
from governance.services import audit_record
from tenants.models import Tenant
from tests.agents.api_support import agent_make, member_add
from tests.conftest import ALICE, RITA

from .conftest import chain_head, record

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
URL = "/api/v1/governance/audit/"


def _get(client: Client, **params: Any) -> Any:
    response = client.get(f"{URL}?{urlencode(params)}" if params else URL)
    return response


def _as(client: Client, tenant: Tenant, username: str) -> Client:
    connection.set_tenant(tenant)
    client.force_login(User.objects.get(username=username), backend=MODEL_BACKEND)
    connection.set_schema_to_public()
    return client


@pytest.fixture
def marked(in_acme: Tenant) -> str:
    """Five events of acme's chain sharing one correlation id, returned."""
    correlation = f"test-api-{chain_head()[0]}"
    for i in range(5):
        audit_record(
            actor=Actor.system("tests"),
            verb="test.api",
            target_type="test",
            target_id=str(i),
            data={"i": i},
            correlation_id=correlation,
        )
    connection.set_schema_to_public()
    return correlation


def test_the_list_is_newest_first_with_the_chain_links(acme_client: Client, acme: Tenant, marked: str) -> None:
    body = _get(_as(acme_client, acme, ALICE), correlation_id=marked).json()
    seqs = [event["seq"] for event in body["results"]]
    assert len(seqs) == 5 and seqs == sorted(seqs, reverse=True)
    first = body["results"][-1]
    connection.set_tenant(acme)
    stored = AuditEvent.objects.get(seq=first["seq"])
    assert (first["hash"], first["prev_hash"], first["data"]) == (stored.hash, stored.prev_hash, {"i": 0})
    assert first["actor_type"] == "system" and first["actor_label"] == "tests"
    assert body["next"] is None


def test_the_cursor_pages_are_stable_while_events_are_appended(acme_client: Client, acme: Tenant, marked: str) -> None:
    client = _as(acme_client, acme, ALICE)
    page1 = _get(client, correlation_id=marked, limit=2).json()
    assert [e["target_id"] for e in page1["results"]] == ["4", "3"]
    # New events of the same correlation id land at the head; the next page does not move.
    connection.set_tenant(acme)
    audit_record(actor=Actor.system("tests"), verb="test.api", target_type="test", target_id="5", correlation_id=marked)
    connection.set_schema_to_public()
    page2 = client.get(page1["next"]).json()
    assert [e["target_id"] for e in page2["results"]] == ["2", "1"]
    page3 = client.get(page2["next"]).json()
    assert [e["target_id"] for e in page3["results"]] == ["0"]
    assert page3["next"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"verb": "test.api"}, {"0", "1", "2", "3", "4"}),
        ({"verb": "test.*"}, {"0", "1", "2", "3", "4"}),
        ({"verb": "test.other"}, set()),
        ({"target": "test:3"}, {"3"}),
        ({"target": "test"}, {"0", "1", "2", "3", "4"}),
        ({"actor": "system"}, {"0", "1", "2", "3", "4"}),
        ({"actor": "system:"}, None),
        ({"actor": "user"}, set()),
    ],
)
def test_filters_narrow_the_list(
    acme_client: Client, acme: Tenant, marked: str, params: dict[str, str], expected: set[str] | None
) -> None:
    response = _get(_as(acme_client, acme, ALICE), correlation_id=marked, **params)
    if expected is None:
        assert response.status_code == 400
        return
    assert response.status_code == 200, response.content
    assert {event["target_id"] for event in response.json()["results"]} == expected


def test_the_time_range_includes_from_and_excludes_to(acme_client: Client, acme: Tenant, marked: str) -> None:
    connection.set_tenant(acme)
    events = list(AuditEvent.objects.filter(correlation_id=marked).order_by("seq"))
    connection.set_schema_to_public()
    client = _as(acme_client, acme, ALICE)
    start, end = events[1].created_at, events[3].created_at
    if start == end:  # same microsecond: the range cannot split them
        end = start + dt.timedelta(microseconds=1)
    body = _get(client, correlation_id=marked, **{"from": start.isoformat(), "to": end.isoformat()}).json()
    found = {event["seq"] for event in body["results"]}
    assert events[1].seq in found and events[3].seq not in found and events[0].seq not in found


def test_the_agent_filter_finds_what_the_agent_did_and_what_was_done_to_it(acme_client: Client, acme: Tenant) -> None:
    agent = agent_make(acme, f"audit-api-{chain_head()[0]}")
    other = agent_make(acme, f"audit-api-other-{chain_head()[0]}")
    audit_record(actor=Actor("agent", str(agent.pk), agent.name), verb="test.agent_did", target_type="test")
    audit_record(actor=Actor.system("tests"), verb="test.agent_named", target_type="test", data={"agent_id": agent.pk})
    audit_record(actor=Actor("agent", str(other.pk), other.name), verb="test.agent_did", target_type="test")
    client = _as(acme_client, acme, ALICE)
    verbs = [event["verb"] for event in _get(client, agent=agent.pk).json()["results"]]
    assert verbs == ["test.agent_named", "test.agent_did", "agent.created"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"verb": "approval*"}, "verb"),
        ({"actor": "robot"}, "actor"),
        ({"agent": "refunds"}, "agent"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"correlation_id": "x" * 65}, "correlation_id"),
        ({"target": ":3"}, "target"),
        ({"agent": ""}, "agent"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"verbs": "test.api"}, "verbs"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(acme_client: Client, acme: Tenant, params: dict[str, str], name: str) -> None:
    response = _get(_as(acme_client, acme, ALICE), **params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_filter"
    assert body["extra"] == {"filter": name}
    assert name in body["detail"]


def test_a_viewer_reads_the_trail_and_a_role_less_user_does_not(acme_client: Client, acme: Tenant) -> None:
    viewer = member_add(acme, f"viewer-{chain_head()[0]}@acme.example", "viewer")
    nobody = User.objects.create_user(f"nobody-{chain_head()[0]}@acme.example")
    acme_client.force_login(viewer, backend=MODEL_BACKEND)
    connection.set_schema_to_public()
    assert _get(acme_client).status_code == 200
    acme_client.force_login(nobody, backend=MODEL_BACKEND)
    assert _get(acme_client).status_code == 403
    acme_client.logout()
    assert _get(acme_client).status_code == 401


def test_an_agent_scoped_reviewer_does_not_read_events_of_no_agent_of_theirs(
    acme_client: Client, acme: Tenant, marked: str
) -> None:
    # System events that name none of the reviewer's agents are not theirs to read
    # (tests/governance/test_audit_scope.py has what they do read).
    connection.set_tenant(acme)
    rita = User.objects.get(username=RITA)
    agent = Agent.objects.order_by("pk").first() or agent_make(acme, "audit-scope")
    assign_perm("agents.review_agent", rita, agent)
    body = _get(_as(acme_client, acme, RITA), correlation_id=marked).json()
    assert body["results"] == []
    assert len(_get(_as(acme_client, acme, ALICE), correlation_id=marked).json()["results"]) == 5


def test_each_tenant_reads_only_its_own_chain(
    acme_client: Client, beta_client: Client, acme: Tenant, beta: Tenant
) -> None:
    connection.set_tenant(acme)
    marker = f"acme-only-{chain_head()[0]}"
    record("test.isolation", data={"marker": marker})
    events = AuditEvent.objects.filter(verb="test.isolation").count()
    connection.set_tenant(beta)
    client = beta_client
    client.force_login(User.objects.get(username="bob@beta.example"), backend=MODEL_BACKEND)
    connection.set_schema_to_public()
    assert _get(client, verb="test.isolation").json()["results"] == []
    assert events >= 1
