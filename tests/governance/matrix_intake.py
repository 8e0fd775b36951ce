"""Access-matrix entries of the event intake (agents.api_intake, agents.admin_intake); see
tests/governance/test_access_matrix.py for the tables' formats.

The ingest endpoint is PUBLIC in the matrix's sense: it asks no user for credentials, since a
request authenticates by its signature. The matrix posts without one, so every actor gets 400
``signature_missing`` (not an authentication answer: nobody's role matters), except beta's bob,
whose API token of another tenant is refused (401) there as everywhere; signed requests are
tested in tests/integrations/test_event_intake.py."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse

from agents.intake import source_create
from agents.models import Agent, EventSource
from agents.services import agent_create
from config.connection import connection
from governance.actors import Actor
from tenants.models import Tenant

ALL = frozenset({"admin", "agent_manager", "reviewer", "viewer"})
MANAGERS = frozenset({"admin", "agent_manager"})
NOBODY: frozenset[str] = frozenset()
PUBLIC = "public"
SOURCE, AGENT, SECRET = "matrix-alerts", "matrix-ops", "matrix-secret-0123456789"

API: dict[tuple[str, str], Any] = {
    ("event-ingest", "post"): PUBLIC,
    ("event-source-list", "get"): ALL,
    ("event-source-list", "post"): MANAGERS,
    ("event-source-detail", "get"): ALL,
    ("event-source-detail", "patch"): MANAGERS,
    ("event-source-detail", "delete"): MANAGERS,
}
ADMIN: dict[tuple[str, str], Any] = {
    **{(f"agents_eventsource_{view}", "get"): ALL for view in ("changelist", "change", "history")},
    ("agents_eventsource_add", "get"): MANAGERS,
    ("agents_eventsource_delete", "get"): NOBODY,  # disabled, never deleted: its events keep their record
}
ACTIONS: dict[str, dict[str, Any]] = {"agents.eventsource": {"delete_selected": NOBODY}}


def _ops_agent(world: Any) -> Agent:
    """An ops agent of olga's in acme (made on first use)."""
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    agent = Agent.objects.filter(name=AGENT).first()
    return agent or agent_create(name=AGENT, blueprint="ops", privilege_ceiling=4, user=world.olga)


def _source(world: Any) -> EventSource:
    agent = _ops_agent(world)
    found = EventSource.objects.filter(name=SOURCE).first()
    return found or source_create(
        name=SOURCE, kind="alertmanager", agent_name=agent.name, secret=SECRET, actor=Actor.for_user(world.olga)
    )


def _url(url_name: str, kwarg: str) -> Any:
    def url(world: Any) -> str:
        source = _source(world)
        connection.set_schema_to_public()
        return reverse(url_name, kwargs={kwarg: source.name})

    return url


def _admin_url(view: str) -> Any:
    def url(world: Any) -> str:
        return reverse(f"admin:agents_eventsource_{view}", args=[_source(world).pk])

    return url


ALERT = {
    "version": "4",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "KubePodCrashLooping", "severity": "critical", "service": "api"},
            "annotations": {"summary": "api pod in crashloop"},
            "startsAt": "2026-12-02T03:00:00Z",
            "fingerprint": "matrix",
        }
    ],
}

API_URLS: dict[str, Any] = {
    "event-ingest": _url("event-ingest", "source"),
    "event-source-detail": _url("event-source-detail", "name"),
}
API_BODIES: dict[tuple[str, str], Any] = {
    ("event-ingest", "post"): lambda world, actor: json.loads(json.dumps(ALERT)),
    ("event-source-list", "post"): lambda world, actor: {
        "name": f"made-by-{actor.replace(' ', '-').replace(chr(39), '')}",
        "kind": "generic",
        "agent": _ops_agent(world).name,
        "secret": SECRET,
    },
    ("event-source-detail", "patch"): lambda world, actor: {"enabled": True},
}
ADMIN_URLS: dict[str, Any] = {
    f"agents_eventsource_{view}": _admin_url(view) for view in ("change", "history", "delete")
}
