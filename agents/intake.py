"""Signed event intake: monitoring systems report events to an ops agent.

A tenant's admin or agent manager declares an **event source** (a name, the payload it posts,
the ops agent its events go to, a signing secret). The source posts to
``POST /api/v1/events/ingest/<name>`` on the tenant's host; each event becomes a task of the
source's agent, once: a second delivery of the same event id answers with the first task.

Signature (the only authentication of the endpoint; no user, session or CSRF token)::

    Vigil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

The timestamp must be within SIGNATURE_TOLERANCE of the server's clock, so a captured request
cannot be replayed later (and a replay within the window is a duplicate event). Several ``v1``
values may be given (a sender switching to a new secret signs with both). With openssl::

    t=$(date +%s)
    sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" -hex | sed 's/^.* //')
    curl -H "Vigil-Signature: t=$t,v1=$sig" -H 'Content-Type: application/json' --data "$body" ...

Payloads: Alertmanager's webhook (version 4: each alert of ``alerts[]`` is one event, its id
``<fingerprint>:<startsAt>``; a resolved alert whose firing was never received is ignored)
or a generic JSON event ``{id, title, severity?, service?, details?}``.

Answers: 202 with the tasks started, 200 when every event was a duplicate (with the existing
tasks), 404 for an unknown or disabled source, 400 without a signature or with a malformed
payload (the field named), 401 for a wrong or stale signature, 409 when the agent is paused
(nothing is recorded: the sender retries). A request is one transaction: its events and their
tasks are all recorded, or none; the tasks' messages are sent after commit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import string
import time
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from agents.blueprints.ops import OpsAgent
from agents.exceptions import AgentNotFound
from agents.integrations.secrets import SecretUnreadable, secret_decrypt, secret_encrypt
from agents.models import Agent, EventSource, EventSourceKind, IngestedEvent, TaskPriority
from agents.services import agent_get, task_submit_within
from config.errors import NameTaken, VigilError
from governance.actors import Actor
from governance.services import audit_record

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Vigil-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_EVENTS_PER_REQUEST = 100
SECRET_MIN_LENGTH, SECRET_MAX_LENGTH = 16, 200
_SIGNATURE_PART = re.compile(r"(t|v1)=([0-9A-Fa-f]{1,128})")
_SOURCE_NAME = re.compile(r"[-a-zA-Z0-9_]{1,50}")
# Severities as monitoring systems spell them, to the ops agent's four.
SEVERITIES = {
    "critical": "critical",
    "page": "critical",
    "fatal": "critical",
    "error": "error",
    "high": "error",
    "major": "error",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "minor": "warning",
    "info": "info",
    "low": "info",
    "none": "info",
}
PRIORITY_BY_SEVERITY = {
    "critical": TaskPriority.CRITICAL,
    "error": TaskPriority.HIGH,
    "warning": TaskPriority.MEDIUM,
    "info": TaskPriority.LOW,
}


class EventSourceNotFound(VigilError):
    code = "event_source_not_found"
    status = 404


class InvalidEventSource(VigilError):
    code = "invalid_event_source"
    status = 400


class EventSourceInUse(VigilError):
    code = "event_source_in_use"
    status = 409


class SignatureMissing(VigilError):
    code = "signature_missing"
    status = 400


class SignatureRefused(VigilError):
    """A signature that does not match the body and the source's secret, or is too old."""

    code = "signature_invalid"
    status = 401


class InvalidEvent(VigilError):
    code = "invalid_event"
    status = 400


class SourceSecretUnreadable(VigilError):
    code = "source_secret_unreadable"
    status = 500


# ------------------------------------------------------------------------------ sources
def _source_actor(source: EventSource) -> Actor:
    return Actor.system(f"event-source:{source.name}")


def secret_checked(secret: Any) -> str:
    """``secret`` if it may sign requests: long enough to resist guessing, and printable so that
    a sender can pass it to openssl on a command line. Raises InvalidEventSource."""
    printable = set(string.printable) - set(string.whitespace)
    if (
        not isinstance(secret, str)
        or not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH
        or not set(secret) <= printable
    ):
        raise InvalidEventSource(
            "invalid signing secret",
            fields={
                "secret": f"must be {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} printable ASCII characters, no spaces"
            },
        )
    return secret


def _ops_agent(agent_name: Any) -> Agent:
    try:
        agent = agent_get(name=str(agent_name))
    except AgentNotFound:
        raise InvalidEventSource(f"no agent {agent_name!r}", fields={"agent": "no such agent"}) from None
    if agent.blueprint != OpsAgent.name:
        raise InvalidEventSource(
            f"agent {agent.name} is a {agent.blueprint} agent; events go to an ops agent",
            fields={"agent": "must be an ops agent"},
        )
    return agent


def source_get(*, name: str, lock: bool = False) -> EventSource:
    query = EventSource.objects.select_for_update(no_key=True, of=("self",)) if lock else EventSource.objects.all()
    try:
        return query.select_related("agent").get(name=name)
    except EventSource.DoesNotExist:
        raise EventSourceNotFound(f"no event source {name!r}") from None


@transaction.atomic(durable=True)
def source_create(
    *, name: str, kind: str, agent_name: str, secret: str, enabled: bool = True, actor: Actor
) -> EventSource:
    """Declare a source of events for an ops agent (audited; the secret is stored encrypted
    and named nowhere else). Raises InvalidEventSource."""
    return source_create_within(
        name=name, kind=kind, agent_name=agent_name, secret=secret, enabled=enabled, actor=actor
    )


def source_create_within(
    *, name: str, kind: str, agent_name: str, secret: str, enabled: bool = True, actor: Actor
) -> EventSource:
    """``source_create`` inside the caller's transaction (the admin's form)."""
    if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name):
        raise InvalidEventSource("invalid name", fields={"name": "1 to 50 letters, digits, '-' or '_'"})
    if kind not in EventSourceKind.values:
        raise InvalidEventSource("invalid kind", fields={"kind": f"one of {', '.join(EventSourceKind.values)}"})
    agent = _ops_agent(agent_name)
    token = secret_encrypt(secret_checked(secret))
    try:
        with transaction.atomic():
            source = EventSource.objects.create(
                name=name, kind=kind, agent=agent, secret_token=token, enabled=bool(enabled)
            )
    except IntegrityError:
        raise NameTaken(f"an event source named {name!r} exists already") from None
    audit_record(
        actor=actor,
        verb="event_source.created",
        target_type="event_source",
        target_id=source.pk,
        data={"name": name, "kind": kind, "agent": agent.name, "enabled": source.enabled},
    )
    return source


@transaction.atomic(durable=True)
def source_update(
    *,
    name: str,
    actor: Actor,
    kind: str | None = None,
    agent_name: str | None = None,
    enabled: bool | None = None,
    secret: str | None = None,
) -> EventSource:
    """Change a source; a new ``secret`` replaces the old one at once (requests signed with the
    old one are refused from the commit on). Audited without the secret."""
    return source_update_within(
        name=name, actor=actor, kind=kind, agent_name=agent_name, enabled=enabled, secret=secret
    )


def source_update_within(
    *,
    name: str,
    actor: Actor,
    kind: str | None = None,
    agent_name: str | None = None,
    enabled: bool | None = None,
    secret: str | None = None,
) -> EventSource:
    """``source_update`` inside the caller's transaction (the admin's form)."""
    source = source_get(name=name, lock=True)
    changed: dict[str, Any] = {}
    if kind is not None and kind != source.kind:
        if kind not in EventSourceKind.values:
            raise InvalidEventSource("invalid kind", fields={"kind": f"one of {', '.join(EventSourceKind.values)}"})
        source.kind = changed["kind"] = kind
    if agent_name is not None and agent_name != source.agent.name:
        source.agent = _ops_agent(agent_name)
        changed["agent"] = source.agent.name
    if enabled is not None and bool(enabled) != source.enabled:
        source.enabled = changed["enabled"] = bool(enabled)
    if secret is not None:
        source.secret_token = secret_encrypt(secret_checked(secret))
        source.secret_rotated_at = timezone.now()
        changed["secret"] = "rotated"  # noqa: S105 (what changed, not the secret)
    if not changed:
        return source
    source.save()
    verb = "event_source.secret_rotated" if list(changed) == ["secret"] else "event_source.changed"
    audit_record(
        actor=actor, verb=verb, target_type="event_source", target_id=source.pk, data={"name": name, **changed}
    )
    return source


@transaction.atomic(durable=True)
def source_delete(*, name: str, actor: Actor) -> None:
    """Remove a source that never reported an event; one that did keeps its events (the record
    of which task each started), so it is disabled instead. Raises EventSourceInUse."""
    source = source_get(name=name, lock=True)
    pk = source.pk
    try:
        with transaction.atomic():
            source.delete()
    except ProtectedError:
        raise EventSourceInUse(f"event source {name} has received events; disable it instead", source=name) from None
    audit_record(
        actor=actor, verb="event_source.deleted", target_type="event_source", target_id=pk, data={"name": name}
    )


# ---------------------------------------------------------------------------- signature
def signature_header(*, secret: str, body: bytes, timestamp: int) -> str:
    """The header value a sender puts on ``body`` (what a test or a relay in Python uses)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def _mac(secret: str, timestamp: int | str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_verify(*, secret: str, header: str | None, body: bytes, now: float | None = None) -> None:
    """Raise SignatureMissing without a header, SignatureRefused when no ``v1`` of it is the
    body's HMAC under ``secret`` or its timestamp is outside the tolerance."""
    if not header:
        raise SignatureMissing(
            f"the request is not signed: send the {SIGNATURE_HEADER} header",
            fields={SIGNATURE_HEADER: "missing; t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + body>"},
        )
    timestamp, candidates = "", []
    for part in header.split(","):
        found = _SIGNATURE_PART.fullmatch(part.strip())
        if found is None:
            continue  # an unknown scheme (v0, v2 …) is not ours to judge
        if found.group(1) == "t":
            timestamp = found.group(2)
        else:
            candidates.append(found.group(2).lower())
    if not timestamp.isdigit() or not candidates:
        raise SignatureRefused(f"{SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex>")
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureRefused("the signature does not match the body and the source's secret")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > SIGNATURE_TOLERANCE_SECONDS:
        raise SignatureRefused(
            f"the signature's timestamp is {int(abs(age))} s away from the server's clock "
            f"(at most {SIGNATURE_TOLERANCE_SECONDS} s): sign each request when it is sent",
            reason="stale",
        )


# ------------------------------------------------------------------------------ payloads
@dataclass(frozen=True)
class ParsedEvent:
    event_id: str
    input: dict[str, Any]
    priority: int
    payload_hash: str
    resolved: bool = False


def _invalid(field: str, problem: str) -> InvalidEvent:
    return InvalidEvent(f"invalid event payload: {field} {problem}", fields={field: problem})


def _text(value: Any, field: str, *, required: bool = True, limit: int = 300) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _invalid(field, "must be a non-empty string")
    if len(value) > limit:
        raise _invalid(field, f"must be at most {limit} characters")
    return value


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid(field, "must be an object of strings")
    return value


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _event_input(
    *, source: EventSource, event_id: str, service: str, kind: str, message: str, severity: str | None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "service": (service or "unknown")[:100],
        "kind": kind[:100],
        "source": source.name,
        "event_id": event_id,
    }
    if message:
        event["message"] = message[:5000]
    if severity:
        event["severity"] = severity
    return event


def _alertmanager_events(source: EventSource, payload: dict[str, Any]) -> list[ParsedEvent]:
    if payload.get("version") != "4":
        raise _invalid("version", 'must be "4" (Alertmanager webhook payload version 4)')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise _invalid("alerts", "must be a non-empty list of alerts")
    if len(alerts) > MAX_EVENTS_PER_REQUEST:
        raise _invalid("alerts", f"must hold at most {MAX_EVENTS_PER_REQUEST} alerts")
    events = []
    for i, alert in enumerate(alerts):
        at = f"alerts[{i}]"
        if not isinstance(alert, dict):
            raise _invalid(at, "must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise _invalid(f"{at}.status", 'must be "firing" or "resolved"')
        fingerprint = _text(alert.get("fingerprint"), f"{at}.fingerprint", limit=100)
        starts_at = _text(alert.get("startsAt"), f"{at}.startsAt", limit=64)
        labels = _string_map(alert.get("labels"), f"{at}.labels")
        annotations = _string_map(alert.get("annotations"), f"{at}.annotations")
        alertname = _text(labels.get("alertname"), f"{at}.labels.alertname")
        severity = SEVERITIES.get(labels.get("severity", "").strip().lower())
        event_id = f"{fingerprint}:{starts_at}"
        message = ". ".join(annotations[k] for k in ("summary", "description") if annotations.get(k))
        service = labels.get("service") or labels.get("job") or labels.get("instance") or "unknown"
        events.append(
            ParsedEvent(
                event_id=event_id,
                input=_event_input(
                    source=source,
                    event_id=event_id,
                    service=service,
                    kind=alertname,
                    message=message,
                    severity=severity,
                ),
                priority=PRIORITY_BY_SEVERITY.get(severity or "", TaskPriority.MEDIUM),
                payload_hash=_hash(alert),
                resolved=status == "resolved",
            )
        )
    return events


def _generic_events(source: EventSource, payload: dict[str, Any]) -> list[ParsedEvent]:
    raw_id = payload.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    event_id = _text(raw_id, "id")
    title = _text(payload.get("title"), "title", limit=1000)
    severity = payload.get("severity")
    if severity is not None and severity not in PRIORITY_BY_SEVERITY:
        raise _invalid("severity", f"must be one of {', '.join(PRIORITY_BY_SEVERITY)}")
    service = _text(payload.get("service"), "service", required=False, limit=100)
    details = payload.get("details")
    if details is not None and not isinstance(details, (str, dict)):
        raise _invalid("details", "must be a string or an object")
    message = details if isinstance(details, str) else json.dumps(details, sort_keys=True) if details else ""
    return [
        ParsedEvent(
            event_id=event_id,
            input=_event_input(
                source=source, event_id=event_id, service=service, kind=title, message=message, severity=severity
            ),
            priority=PRIORITY_BY_SEVERITY.get(severity or "", TaskPriority.MEDIUM),
            payload_hash=_hash(payload),
        )
    ]


def events_parse(source: EventSource, body: bytes) -> list[ParsedEvent]:
    """The events of a request's body, by the source's kind; raises InvalidEvent naming the
    first field at fault."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid("body", f"is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise _invalid("body", "must be a JSON object")
    if source.kind == EventSourceKind.ALERTMANAGER:
        return _alertmanager_events(source, payload)
    return _generic_events(source, payload)


# ------------------------------------------------------------------------------- intake
@dataclass(frozen=True)
class Ingested:
    event_id: str
    task_id: int | None
    duplicate: bool
    ignored: str = ""  # why no task was started (a resolved alert never seen firing)


def events_ingest(*, source_name: str, body: bytes, signature: str | None) -> list[Ingested]:
    """Verify, parse and record the events of one request to ``source_name`` (see the module's
    docstring for what each refusal means), starting a task of the source's agent for each new
    event, in one transaction."""
    source = source_get(name=source_name) if _SOURCE_NAME.fullmatch(source_name) else None
    if source is None or not source.enabled:
        raise EventSourceNotFound(f"no event source {source_name!r}")
    try:
        secret = secret_decrypt(source.secret_token)
    except SecretUnreadable as exc:
        logger.error("intake.secret_unreadable", extra={"source": source.name})
        raise SourceSecretUnreadable(f"the signing secret of event source {source.name} cannot be read") from exc
    try:
        signature_verify(secret=secret, header=signature, body=body)
    except SignatureRefused as exc:
        logger.warning("intake.signature_refused", extra={"source": source.name, "error": exc.detail})
        raise
    events = events_parse(source, body)
    return _events_record(source, events)


@transaction.atomic(durable=True)
def _events_record(source: EventSource, events: list[ParsedEvent]) -> list[Ingested]:
    # The source's row lock orders concurrent deliveries to it: the second finds the first's events.
    locked = EventSource.objects.select_for_update(no_key=True).filter(pk=source.pk, enabled=True).first()
    if locked is None:
        raise EventSourceNotFound(f"no event source {source.name!r}")
    ids = [event.event_id for event in events]
    known = dict(IngestedEvent.objects.filter(source=locked, event_id__in=ids).values_list("event_id", "task_id"))
    actor = _source_actor(locked)
    results: list[Ingested] = []
    for event in events:
        if event.event_id in known:
            results.append(Ingested(event.event_id, known[event.event_id], duplicate=True))
            continue
        if event.resolved:
            results.append(Ingested(event.event_id, None, duplicate=False, ignored="resolved, never seen firing"))
            continue
        task = task_submit_within(agent_id=locked.agent_id, input=event.input, priority=event.priority, actor=actor)
        record = IngestedEvent.objects.create(
            source=locked, event_id=event.event_id, payload_hash=event.payload_hash, task=task
        )
        audit_record(
            actor=actor,
            verb="event.ingested",
            target_type="ingested_event",
            target_id=record.pk,
            data={
                "source": locked.name,
                "event_id": event.event_id,
                "task": task.pk,
                "payload_hash": event.payload_hash,
            },
            correlation_id=task.correlation_id,
        )
        known[event.event_id] = task.pk
        results.append(Ingested(event.event_id, task.pk, duplicate=False))
    return results
