"""Signed event intake (agents.intake): a monitoring system's signed events become ops tasks,
once each, whose restart waits for the approval its risk calls for; anything unsigned,
wrongly signed, stale, malformed or addressed to another tenant's source starts nothing.

The first test runs on a real worker with committed data; the others run in the test's
transaction (the tasks they start are never sent: nothing commits).
"""

from __future__ import annotations

import json
import subprocess
import time
from io import StringIO
from typing import Any

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from agents.intake import SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECONDS, signature_header, source_create
from agents.integrations.secrets import secret_decrypt
from agents.models import Agent, EventSource, IngestedEvent, Task
from agents.services import agent_create
from config.connection import connection
from governance.actors import Actor
from governance.models import AuditEvent
from governance.roles import user_agent_scope_set
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in
from tests.agents.helpers_execution import (
    FINAL,
    outbox_kinds,
    steps_of,
    unique,
    use_tenant,
    wait_for_state,
)
from tests.conftest import ALICE, MAX, WorkerHandle

SECRET = "intake-secret-0123456789abcdef"
OPERATOR = Actor.operator("tests")


def alert(
    name: str, *, severity: str, service: str = "checkout-api", status: str = "firing", fingerprint: str = ""
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, "service": service},
        "annotations": {"summary": f"{service} pod in crashloop", "description": "restarted 12 times in 10 minutes"},
        "startsAt": "2026-12-02T03:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fingerprint or unique("fp"),
    }


def alertmanager_body(*alerts: dict[str, Any]) -> bytes:
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "vigil",
        "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": list(alerts),
    }
    return json.dumps(payload).encode()


def post(
    client: Client, source: str, body: bytes, *, secret: str = SECRET, at: float | None = None, signed: bool = True
) -> Any:
    headers: dict[str, str] = {}
    if signed:
        timestamp = int(time.time() if at is None else at)
        headers[SIGNATURE_HEADER] = signature_header(secret=secret, body=body, timestamp=timestamp)
    response = client.post(f"/api/v1/events/ingest/{source}/", body, content_type="application/json", headers=headers)
    connection.set_schema_to_public()
    return response


def ops_source(tenant: Tenant, *, kind: str = "alertmanager", **agent_settings: Any) -> EventSource:
    connection.set_tenant(tenant)
    agent = agent_create(name=unique("ops"), blueprint="ops", privilege_ceiling=4, **agent_settings)
    return source_create(name=unique("am"), kind=kind, agent_name=agent.name, secret=SECRET, actor=OPERATOR)


# ------------------------------------------------------------------ on a real worker
def test_signed_alerts_become_ops_tasks_whose_restart_waits_for_the_approval_its_risk_needs(
    committed: None, celery_worker: WorkerHandle
) -> None:
    acme = use_tenant("acme")
    source = ops_source(acme)
    critical, warning, info = (
        alert("KubePodCrashLooping", severity="critical"),
        alert("KubePodCrashLooping", severity="warning", service="search"),
        alert("PodOOMKilled", severity="info", service="thumbnails"),
    )

    response = post(Client(HTTP_HOST="acme.localhost"), source.name, alertmanager_body(critical, warning, info))

    assert response.status_code == 202, response.content
    events = response.json()["events"]
    assert [(e["event_id"], e["duplicate"]) for e in events] == [
        (f"{a['fingerprint']}:{a['startsAt']}", False) for a in (critical, warning, info)
    ]
    use_tenant("acme")
    tasks = [Task.objects.get(pk=e["task"]) for e in events]
    assert all(t.agent_id == source.agent_id and t.created_by is None for t in tasks)
    assert tasks[0].input == {
        "service": "checkout-api",
        "kind": "KubePodCrashLooping",
        "message": "checkout-api pod in crashloop. restarted 12 times in 10 minutes",
        "severity": "critical",
        "source": source.name,
        "event_id": events[0]["event_id"],
    }
    assert [t.priority for t in tasks] == [4, 2, 1]

    # Critical: a high-risk restart, for an admin; warning: medium, for a reviewer.
    for task, tool, role in ((tasks[0], "restart_service", "admin"), (tasks[1], "restart_service.medium", "reviewer")):
        waiting = wait_for_state(task.pk, {"awaiting_approval"} | FINAL)
        assert waiting.state == "awaiting_approval", waiting.last_error
        request = ApprovalRequest.objects.get(task=waiting)
        assert (request.tool, request.required_role, request.status) == (tool, role, "pending")
        assert request.arguments["service"] == task.input["service"]
    # Info: a low-risk restart runs without anyone's approval.
    done = wait_for_state(tasks[2].pk, FINAL)
    assert done.state == "verified", done.last_error
    assert steps_of(done) == [("analyze", "record"), ("restart_service.low", "allow")]
    assert done.output is not None and done.output["risk"] == "low"
    assert outbox_kinds(done) == ["restart"]
    assert not ApprovalRequest.objects.filter(task=done).exists()

    recorded = IngestedEvent.objects.get(task=tasks[0])
    assert (recorded.source_id, recorded.event_id) == (source.pk, events[0]["event_id"])
    ingested = AuditEvent.objects.get(verb="event.ingested", target_id=str(recorded.pk))
    assert (ingested.actor_label, ingested.data["task"]) == (f"event-source:{source.name}", tasks[0].pk)
    submitted = AuditEvent.objects.get(verb="task.submitted", target_id=str(tasks[0].pk))
    assert submitted.actor_label == f"event-source:{source.name}"


# The README's command (with the demo's port, source and secret as variables).
CURL = r"""
body='{"version":"4","status":"firing","receiver":"vigil","alerts":[{"status":"firing",
"labels":{"alertname":"KubePodCrashLooping","severity":"critical","service":"checkout-api"},
"annotations":{"summary":"checkout-api pod in crashloop"},"startsAt":"2026-12-02T03:00:00Z","fingerprint":"'"$FP"'"}]}'
t=$(date +%s)
sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$SECRET" -hex | sed 's/^.* //')
curl -s -X POST "http://127.0.0.1:$PORT/api/v1/events/ingest/$SOURCE/" -H 'Host: acme.localhost' \
  -H 'Content-Type: application/json' -H "Vigil-Signature: t=$t,v1=$sig" --data "$body"
"""


def test_the_documented_curl_command_starts_an_ops_task_that_waits_for_an_admin(
    committed: None, celery_worker: WorkerHandle, web_server: int
) -> None:
    acme = use_tenant("acme")
    source = ops_source(acme)
    env = {
        "PORT": str(web_server),
        "SOURCE": source.name,
        "SECRET": SECRET,
        "FP": unique("fp"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(["bash", "-c", CURL], env=env, capture_output=True, text=True, timeout=30, check=True)
    answer = json.loads(done.stdout)
    use_tenant("acme")
    waiting = wait_for_state(answer["events"][0]["task"], {"awaiting_approval"} | FINAL)
    assert waiting.state == "awaiting_approval", waiting.last_error
    assert ApprovalRequest.objects.get(task=waiting).required_role == "admin"


# ------------------------------------------------------------------ in the test's transaction
def test_a_second_delivery_of_an_event_answers_200_with_the_first_task(acme: Tenant, acme_client: Client) -> None:
    source = ops_source(acme)
    firing = alert("KubePodCrashLooping", severity="critical")
    first = post(acme_client, source.name, alertmanager_body(firing))
    assert first.status_code == 202, first.content
    task_id = first.json()["events"][0]["task"]

    again = post(acme_client, source.name, alertmanager_body(firing), at=time.time() + 1)
    resolved = post(acme_client, source.name, alertmanager_body({**firing, "status": "resolved"}))

    for response in (again, resolved):
        assert response.status_code == 200, response.content
        assert response.json()["events"] == [
            {
                "event_id": f"{firing['fingerprint']}:{firing['startsAt']}",
                "task": task_id,
                "duplicate": True,
                "ignored": "",
            }
        ]
    connection.set_tenant(acme)
    assert Task.objects.filter(agent_id=source.agent_id).count() == 1
    assert IngestedEvent.objects.filter(source=source).count() == 1


def test_a_resolved_alert_never_seen_firing_starts_nothing(acme: Tenant, acme_client: Client) -> None:
    source = ops_source(acme)
    response = post(
        acme_client, source.name, alertmanager_body(alert("DiskFull", severity="warning", status="resolved"))
    )
    assert response.status_code == 200, response.content
    assert response.json()["events"][0]["task"] is None
    assert response.json()["events"][0]["ignored"] == "resolved, never seen firing"
    connection.set_tenant(acme)
    assert not Task.objects.filter(agent_id=source.agent_id).exists()


def test_a_generic_event_is_accepted_and_deduplicated_by_its_id(acme: Tenant, acme_client: Client) -> None:
    source = ops_source(acme, kind="generic")
    body = json.dumps(
        {
            "id": 4711,
            "title": "payments worker unresponsive",
            "severity": "error",
            "service": "payments",
            "details": {"host": "pay-3"},
        }
    ).encode()
    first = post(acme_client, source.name, body)
    second = post(acme_client, source.name, body)
    assert (first.status_code, second.status_code) == (202, 200)
    task_id = first.json()["events"][0]["task"]
    assert second.json()["events"][0] == {"event_id": "4711", "task": task_id, "duplicate": True, "ignored": ""}
    connection.set_tenant(acme)
    task = Task.objects.get(pk=task_id)
    assert (task.input["kind"], task.input["service"], task.input["severity"], task.priority) == (
        "payments worker unresponsive",
        "payments",
        "error",
        3,
    )
    assert json.loads(task.input["message"]) == {"host": "pay-3"}


def _nothing_started(tenant: Tenant, source: EventSource) -> bool:
    connection.set_tenant(tenant)
    started = Task.objects.filter(agent_id=source.agent_id).exists() or IngestedEvent.objects.exists()
    connection.set_schema_to_public()
    return not started


def test_a_wrong_missing_or_stale_signature_starts_nothing(acme: Tenant, acme_client: Client) -> None:
    source = ops_source(acme)
    body = alertmanager_body(alert("KubePodCrashLooping", severity="critical"))

    wrong = post(acme_client, source.name, body, secret="another-secret-0123456789")
    tampered = acme_client.post(
        f"/api/v1/events/ingest/{source.name}/",
        body.replace(b"checkout-api", b"checkout-apx", 1),
        content_type="application/json",
        HTTP_VIGIL_SIGNATURE=signature_header(secret=SECRET, body=body, timestamp=int(time.time())),
    )
    missing = post(acme_client, source.name, body, signed=False)
    stale = post(acme_client, source.name, body, at=time.time() - SIGNATURE_TOLERANCE_SECONDS - 60)
    garbled = acme_client.post(
        f"/api/v1/events/ingest/{source.name}/", body, content_type="application/json", HTTP_VIGIL_SIGNATURE="sha256=x"
    )

    assert (wrong.status_code, wrong.json()["code"]) == (401, "signature_invalid")
    assert "does not match" in wrong.json()["detail"]
    assert tampered.status_code == 401
    assert (missing.status_code, missing.json()["code"]) == (400, "signature_missing")
    assert "Vigil-Signature" in missing.json()["extra"]["fields"]
    assert (stale.status_code, stale.json()["extra"]) == (401, {"reason": "stale"})
    assert "server's clock" in stale.json()["detail"]
    assert garbled.status_code == 401
    assert _nothing_started(acme, source)


def test_unknown_disabled_and_other_tenants_sources_are_404(
    acme: Tenant, beta: Tenant, acme_client: Client, beta_client: Client
) -> None:
    theirs = ops_source(beta)
    ours = ops_source(acme)
    connection.set_tenant(acme)
    EventSource.objects.filter(pk=ours.pk).update(enabled=False)
    body = alertmanager_body(alert("KubePodCrashLooping", severity="critical"))

    # beta's source, correctly signed with its secret, posted on acme's host: acme has no such source.
    for response in (
        post(acme_client, theirs.name, body),
        post(acme_client, "no-such-source", body),
        post(acme_client, ours.name, body),
    ):
        assert (response.status_code, response.json()["code"]) == (404, "event_source_not_found")
    assert _nothing_started(beta, theirs)
    assert post(beta_client, theirs.name, body).status_code == 202


def test_a_malformed_payload_is_400_naming_the_field_and_starts_nothing(acme: Tenant, acme_client: Client) -> None:
    source = ops_source(acme)
    good = alert("KubePodCrashLooping", severity="critical")
    no_name = {**good, "labels": {"severity": "critical"}}
    cases = {
        b"{not json": "body",
        b"[]": "body",
        json.dumps({"version": "3", "alerts": [good]}).encode(): "version",
        json.dumps({"version": "4", "alerts": []}).encode(): "alerts",
        alertmanager_body(good, no_name): "alerts[1].labels.alertname",
        alertmanager_body({**good, "status": "pending"}): "alerts[0].status",
        alertmanager_body({k: v for k, v in good.items() if k != "fingerprint"}): "alerts[0].fingerprint",
        alertmanager_body({**good, "labels": {"alertname": "X", "severity": 3}}): "alerts[0].labels",
    }
    for body, field in cases.items():
        response = post(acme_client, source.name, body)
        assert response.status_code == 400, (body, response.content)
        assert (response.json()["code"], list(response.json()["extra"]["fields"])) == ("invalid_event", [field])
        assert field in response.json()["detail"]
    # The first alert was valid: the request is one transaction, so it started nothing either.
    assert _nothing_started(acme, source)


def test_sources_are_managed_through_the_api_with_a_write_only_secret(acme: Tenant) -> None:
    alice = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    connection.set_tenant(acme)
    agent = agent_create(name=unique("ops"), blueprint="ops", privilege_ceiling=4)
    triage = agent_create(name=unique("triage"), blueprint="triage")
    connection.set_schema_to_public()
    secret, rotated = "first-secret-0123456789", "second-secret-0123456789"

    wrong_agent = alice.post(
        "/api/v1/event-sources/",
        {"name": "pager", "kind": "alertmanager", "agent": triage.name, "secret": secret},
        content_type="application/json",
    )
    short = alice.post(
        "/api/v1/event-sources/",
        {"name": "pager", "kind": "alertmanager", "agent": agent.name, "secret": "short"},
        content_type="application/json",
    )
    created = alice.post(
        "/api/v1/event-sources/",
        {"name": "pager", "kind": "alertmanager", "agent": agent.name, "secret": secret},
        content_type="application/json",
    )
    assert (wrong_agent.status_code, wrong_agent.json()["extra"]["fields"]) == (400, {"agent": "must be an ops agent"})
    assert (short.status_code, list(short.json()["extra"]["fields"])) == (400, ["secret"])
    assert created.status_code == 201, created.content
    assert created.json()["ingest_url"] == "http://acme.localhost/api/v1/events/ingest/pager/"
    listed = alice.get("/api/v1/event-sources/pager/")
    assert secret not in created.content.decode() + listed.content.decode()
    assert "secret" not in listed.json()

    body = alertmanager_body(alert("KubePodCrashLooping", severity="critical"))
    changed = alice.patch("/api/v1/event-sources/pager/", {"secret": rotated}, content_type="application/json")
    assert changed.status_code == 200, changed.content
    assert post(Client(HTTP_HOST="acme.localhost"), "pager", body, secret=secret).status_code == 401
    assert post(Client(HTTP_HOST="acme.localhost"), "pager", body, secret=rotated).status_code == 202
    assert alice.delete("/api/v1/event-sources/pager/").json()["code"] == "event_source_in_use"

    connection.set_tenant(acme)
    stored = EventSource.objects.get(name="pager")
    assert rotated not in stored.secret_token and secret_decrypt(stored.secret_token) == rotated
    trail = AuditEvent.objects.filter(target_type="event_source", target_id=str(stored.pk)).order_by("seq")
    assert [e.verb for e in trail] == ["event_source.created", "event_source.secret_rotated"]
    assert all(s not in json.dumps(e.data) for e in trail for s in (secret, rotated))
    assert {e.actor_label for e in trail} == {ALICE}


def test_the_event_source_command_adds_lists_and_rotates(acme: Tenant) -> None:
    connection.set_tenant(acme)
    agent = agent_create(name=unique("ops"), blueprint="ops", privilege_ceiling=4)
    connection.set_schema_to_public()

    def run(*args: str) -> str:
        out = StringIO()
        call_command("event_source", "--domain", "acme.localhost", *args, stdout=out)
        return out.getvalue()

    added = run("add", "prometheus", "--agent", agent.name, "--kind", "alertmanager")
    made = added.split("signing secret (shown once): ")[1].strip()
    run("add", "demo-alerts", "--agent", agent.name, "--secret", SECRET)
    listed = run("list")
    rotated = run("rotate-secret", "demo-alerts")

    assert "/api/v1/events/ingest/prometheus/" in added
    assert "prometheus\talertmanager" in listed and "demo-alerts\talertmanager" in listed
    assert made not in listed and SECRET not in listed
    new = rotated.split("signing secret (shown once): ")[1].strip()
    connection.set_tenant(acme)
    by_name = {s.name: secret_decrypt(s.secret_token) for s in EventSource.objects.all()}
    assert (by_name["prometheus"], by_name["demo-alerts"]) == (made, new)
    assert Agent.objects.get(pk=agent.pk).event_sources.count() == 2


def test_the_admin_sets_and_rotates_the_secret_without_showing_it(acme: Tenant) -> None:
    alice = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    connection.set_tenant(acme)
    agent = agent_create(name=unique("ops"), blueprint="ops", privilege_ceiling=4)
    connection.set_schema_to_public()
    secret, rotated = "admin-secret-0123456789", "admin-rotated-0123456789"
    form = {"name": "grafana", "kind": "generic", "agent": agent.pk, "enabled": "on"}

    refused = alice.post("/admin/agents/eventsource/add/", {**form, "secret": "short"})
    added = alice.post("/admin/agents/eventsource/add/", {**form, "secret": secret})
    assert refused.status_code == 200 and "secret" in refused.context["adminform"].form.errors
    assert added.status_code == 302, added.context["adminform"].form.errors if added.context else added
    connection.set_tenant(acme)
    source = EventSource.objects.get(name="grafana")
    connection.set_schema_to_public()
    page = alice.get(f"/admin/agents/eventsource/{source.pk}/change/").content.decode()
    kept = alice.post(f"/admin/agents/eventsource/{source.pk}/change/", {**form, "secret": ""})
    changed = alice.post(f"/admin/agents/eventsource/{source.pk}/change/", {**form, "secret": rotated})

    assert secret not in page and "/api/v1/events/ingest/grafana/" in page
    assert (kept.status_code, changed.status_code) == (302, 302)
    connection.set_tenant(acme)
    assert secret_decrypt(EventSource.objects.get(pk=source.pk).secret_token) == rotated
    verbs = AuditEvent.objects.filter(target_type="event_source", target_id=str(source.pk)).order_by("seq")
    assert [e.verb for e in verbs if e.verb.startswith("event_source.")] == [
        "event_source.created",
        "event_source.secret_rotated",
    ]


def test_events_for_a_paused_agent_are_refused_whole_for_the_sender_to_retry(acme: Tenant, acme_client: Client) -> None:
    source = ops_source(acme)
    connection.set_tenant(acme)
    Agent.objects.filter(pk=source.agent_id).update(status="paused")
    body = alertmanager_body(
        alert("KubePodCrashLooping", severity="critical"), alert("KubePodCrashLooping", severity="warning")
    )
    refused = post(acme_client, source.name, body)
    assert (refused.status_code, refused.json()["code"]) == (409, "agent_unavailable")
    assert _nothing_started(acme, source)
    connection.set_tenant(acme)
    Agent.objects.filter(pk=source.agent_id).update(status="enabled")
    accepted = post(acme_client, source.name, body)
    assert accepted.status_code == 202
    assert [e["duplicate"] for e in accepted.json()["events"]] == [False, False]


def test_an_agent_manager_limited_to_some_agents_manages_only_their_sources(acme: Tenant) -> None:
    mine, theirs = ops_source(acme), ops_source(acme)
    manager = member_add(acme, MAX, "agent_manager")
    user_agent_scope_set(
        user=manager, grant="manage_agent", agent_ids=[mine.agent_id], actor=User.objects.get(username=ALICE)
    )
    client = signed_in(Client(HTTP_HOST="acme.localhost"), acme, MAX)
    connection.set_tenant(acme)
    their_agent = Agent.objects.get(pk=theirs.agent_id).name
    connection.set_schema_to_public()

    listed = client.get("/api/v1/event-sources/")
    hidden = client.patch(f"/api/v1/event-sources/{theirs.name}/", {"enabled": False}, content_type="application/json")
    moved = client.patch(f"/api/v1/event-sources/{mine.name}/", {"agent": their_agent}, content_type="application/json")
    paused = client.patch(f"/api/v1/event-sources/{mine.name}/", {"enabled": False}, content_type="application/json")

    assert [s["name"] for s in listed.json()["results"]] == [mine.name]
    assert (hidden.status_code, moved.status_code, paused.status_code) == (404, 403, 200)
    assert paused.json()["enabled"] is False
