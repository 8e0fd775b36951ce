"""A user limited to some agents (guardian agent scopes) reads, in the audit API and its
export, only the events of those agents and their own actions; an unscoped user reads the
whole trail."""

from __future__ import annotations

import io
import json
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client
from guardian.shortcuts import assign_perm

from agents.models import Agent
from config.connection import connection
from governance.actors import Actor
from governance.models import AuditEvent
from governance.services import audit_record
from governance.verification import export_verify
from tenants.models import Tenant
from tests.agents.api_support import agent_make
from tests.conftest import ALICE, RITA

from .conftest import chain_head

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
AUDIT = "/api/v1/governance/audit/"


@pytest.fixture
def trail(in_acme: Tenant) -> tuple[str, Agent, Agent]:
    """Events of one correlation id: by and about rita's agent, about another agent, by rita,
    by alice and by the system."""
    mark = f"scope-{chain_head()[0]}"
    mine, other = agent_make(in_acme, f"{mark}-mine"), agent_make(in_acme, f"{mark}-other")
    rita, alice = User.objects.get(username=RITA), User.objects.get(username=ALICE)
    assign_perm("agents.review_agent", rita, mine)
    for actor, verb, target, data in (
        (Actor("agent", str(mine.pk), mine.name), "test.did", ("test", "1"), {}),
        (Actor.system("tests"), "test.about", ("agent", str(mine.pk)), {}),
        (Actor.system("tests"), "test.named", ("test", "2"), {"agent_id": mine.pk}),
        (Actor("agent", str(other.pk), other.name), "test.other_did", ("test", "3"), {}),
        (Actor.system("tests"), "test.other_about", ("agent", str(other.pk)), {}),
        (Actor.for_user(rita), "test.by_rita", ("test", "4"), {}),
        (Actor.for_user(alice), "test.by_alice", ("test", "5"), {}),
        (Actor.system("tests"), "test.system", ("test", "6"), {}),
    ):
        audit_record(actor=actor, verb=verb, target_type=target[0], target_id=target[1], data=data, correlation_id=mark)
    connection.set_schema_to_public()
    return mark, mine, other


def _client(tenant: Tenant, username: str) -> Client:
    client = Client(HTTP_HOST="acme.localhost")
    connection.set_tenant(tenant)
    client.force_login(User.objects.get(username=username), backend=MODEL_BACKEND)
    connection.set_schema_to_public()
    return client


def _verbs(client: Client, **params: str) -> list[str]:
    response = client.get(f"{AUDIT}?{urlencode(params)}")
    assert response.status_code == 200, response.content
    return sorted(event["verb"] for event in response.json()["results"])


def test_a_scoped_reviewer_reads_their_agents_events_and_their_own(
    acme: Tenant, trail: tuple[str, Agent, Agent]
) -> None:
    mark, _, other = trail
    rita = _client(acme, RITA)

    assert _verbs(rita, correlation_id=mark) == ["test.about", "test.by_rita", "test.did", "test.named"]
    # Asking for another agent's events does not widen the scope.
    assert _verbs(rita, correlation_id=mark, agent=str(other.pk)) == []


def test_an_unscoped_admin_reads_the_whole_trail(acme: Tenant, trail: tuple[str, Agent, Agent]) -> None:
    mark, _, _ = trail

    assert len(_verbs(_client(acme, ALICE), correlation_id=mark)) == 8


def test_a_scoped_export_holds_the_same_events_and_says_it_is_scoped(
    acme: Tenant, trail: tuple[str, Agent, Agent]
) -> None:
    mark, mine, _ = trail
    connection.set_tenant(acme)
    rita_pk = User.objects.get(username=RITA).pk

    response = _client(acme, RITA).get(f"{AUDIT}export/?{urlencode({'format': 'jsonl', 'correlation_id': mark})}")

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    # As a file opened with newline="" reads it (export_verify's input).
    lines = list(io.StringIO(b"".join(response.streaming_content).decode(), newline=""))
    verbs = sorted(json.loads(line)["event"]["verb"] for line in lines[:-1])
    assert verbs == ["test.about", "test.by_rita", "test.did", "test.named"]
    proof = json.loads(lines[-1])["chain_proof"]
    assert proof["complete"] is False
    assert proof["filters"] == {"correlation_id": mark, "scope": f"agents {mine.pk} and user {rita_pk}"}
    assert export_verify(lines).events == 4


def test_the_dashboards_latest_events_are_scoped_alike(acme: Tenant, trail: tuple[str, Agent, Agent]) -> None:
    response = _client(acme, RITA).get("/api/v1/governance/dashboard/")

    assert response.status_code == 200
    verbs = [line["verb"] for line in response.json()["audit"]]
    # The newest events: rita's own (her sign-in too) and her agent's, none of the others'.
    assert {"test.by_rita", "test.named", "test.about", "test.did"} <= set(verbs)
    assert not {"test.other_did", "test.other_about", "test.by_alice", "test.system"} & set(verbs)
    admin = [line["verb"] for line in _client(acme, ALICE).get("/api/v1/governance/dashboard/").json()["audit"]]
    assert {"test.system", "test.by_alice", "test.other_about"} <= set(admin)


def test_the_admins_audit_pages_are_scoped_alike(acme: Tenant, trail: tuple[str, Agent, Agent]) -> None:
    mark, _, _ = trail
    rita = _client(acme, RITA)

    page = rita.get("/admin/governance/auditevent/", {"q": mark, "correlation_id": mark})
    assert page.status_code == 200
    shown = {event.verb for event in page.context["cl"].queryset.filter(correlation_id=mark)}
    assert shown == {"test.about", "test.by_rita", "test.did", "test.named"}
    connection.set_tenant(acme)
    others = AuditEvent.objects.get(correlation_id=mark, verb="test.by_alice")
    connection.set_schema_to_public()
    assert rita.get(f"/admin/governance/auditevent/{others.pk}/change/").status_code in (302, 404)
    alice_page = _client(acme, ALICE).get("/admin/governance/auditevent/")
    assert {"test.by_alice", "test.system"} <= {
        event.verb for event in alice_page.context["cl"].queryset.filter(correlation_id=mark)
    }


def test_a_number_too_long_for_a_filter_is_a_400_not_a_server_error(acme: Tenant) -> None:
    alice = _client(acme, ALICE)
    for params in ({"agent": "9" * 5000}, {"limit": "9" * 5000}):
        response = alice.get(f"{AUDIT}?{urlencode(params)}")
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"code", "detail", "extra"}
