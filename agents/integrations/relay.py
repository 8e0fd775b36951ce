"""The outbox relay: delivers each outbox message to the tenant's endpoint for its kind.

Delivery is at least once and the receiver makes it exactly once: every attempt of a message
carries the same ``Idempotency-Key`` (its effect's key) and the receiver applies a key once.
Messages are sent in batches (``relay_batch``): one transaction locks a batch's rows, sends
them over one kept-alive connection per endpoint and records every outcome in one statement, so
two relays never send the same message at once, and a relay killed mid-batch leaves its
messages as they were, for the next one to send again under the same keys.

Per task, messages go in step order: only the first message of a task not yet delivered (or
unrouted) may be sent, so a reply never overtakes its refund. A 2xx answer delivers it; a 4xx
(other than 408 and 429) fails it for good; anything else (5xx, a timeout, a refused
connection) retries with exponential backoff until VIGIL_RELAY_MAX_ATTEMPTS, then the message
is a dead letter. A call's timeout is its endpoint's ``timeout_seconds`` for the whole call,
connect to last byte (config.egress): an endpoint dripping its answer times out like a silent
one. A failed or dead message holds the task's later messages back until an admin replays it
(``outbox_replay``). A message whose kind no enabled endpoint takes is
unrouted: it was never sent, and a replay sends it once an endpoint takes its kind.

The relay runs on the ``relay`` queue: ``agents.relay_deliver`` is sent after the step that
wrote a message commits (``relay_kick``) and delivers that task's messages; beat's
``agents.relay_sweep`` sends ``agents.relay_drain`` to each tenant with messages due (a lost
message, a retry's countdown lost with its worker), which delivers them in batches.
"""

from __future__ import annotations

import http.client
import logging
import random
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from agents.integrations.egress import EgressRefused
from agents.integrations.http import EndpointClient
from agents.integrations.secrets import SecretUnreadable
from agents.models import DeliveryStatus, Endpoint, OutboxMessage
from config.connection import connection
from config.errors import VigilError
from governance.actors import Actor
from governance.hashchain import canonical_json
from governance.services import audit_record

logger = logging.getLogger(__name__)

RELAY_ACTOR = Actor.system("relay")
TO_DELIVER = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
REPLAYABLE = (DeliveryStatus.DEAD, DeliveryStatus.FAILED, DeliveryStatus.UNROUTED)
# Client errors that say "later", not "never".
RETRYABLE_4XX = frozenset({408, 425, 429})


class OutboxNotReplayable(VigilError):
    code = "outbox_not_replayable"
    status = 409


def relay_backoff(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential, jittered."""
    ceiling = min(settings.VIGIL_RELAY_MAX_DELAY, settings.VIGIL_RELAY_BASE_DELAY * (2 ** max(0, attempts - 1)))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)


def envelope(message: OutboxMessage) -> bytes:
    """The body sent for ``message``: the same bytes on every attempt."""
    effect = message.effect
    return canonical_json(
        {
            "id": message.pk,
            "kind": message.kind,
            "idempotency_key": effect.idempotency_key,
            "task_id": effect.task_id,
            "step_index": effect.step_index,
            "tool": effect.tool,
            "payload": message.payload,
            "created_at": message.created_at.isoformat(),
        }
    ).encode()


def endpoint_for(kind: str) -> Endpoint | None:
    """The enabled endpoint that takes ``kind`` (services keep it to one)."""
    return Endpoint.objects.select_related("credential").filter(enabled=True, kinds__contains=[kind]).first()


_SEND_OPTIONS: dict[str, Any] = (
    {"declare": []} if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else {}
)


def relay_send(*, task_id: int, countdown: float = 0, schema: str | None = None) -> None:
    """Send ``agents.relay_deliver`` for ``task_id``'s messages now (no transaction wait). A
    failed send is logged: the sweep finds the message anyway."""
    from agents.tasks import relay_deliver

    kwargs = {"schema": schema or connection.schema_name, "task_id": task_id}
    options: dict[str, Any] = {"queue": "relay", "argsrepr": "()", "kwargsrepr": repr(kwargs), **_SEND_OPTIONS}
    if countdown:
        options["countdown"] = countdown
    try:
        relay_deliver.apply_async(kwargs=kwargs, **options)
    except (KombuError, OSError) as exc:
        logger.warning("relay.send_failed", extra={**kwargs, "error": str(exc)[:200]})


def relay_kick(*, task_id: int) -> None:
    """After the current transaction commits (at once outside one): deliver ``task_id``'s new
    outbox message. The engine calls it when a step wrote one."""
    schema = connection.schema_name
    transaction.on_commit(lambda: relay_send(task_id=task_id, schema=schema))


# The messages a relay may send now, locked: due, and the first of their task not yet passed
# (an earlier message still pending, retrying, failed, dead, or held by another relay keeps a
# later one back). SKIP LOCKED: messages another relay is sending are not waited for.
_DUE = (
    "SELECT o.id FROM agents_outboxmessage o JOIN agents_effect e ON e.id = o.effect_id"
    " WHERE o.status IN ('pending', 'retrying') AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= %(now)s)"
    " {task_filter} AND NOT EXISTS (SELECT 1 FROM agents_outboxmessage p JOIN agents_effect pe ON pe.id = p.effect_id"
    " WHERE pe.task_id = e.task_id AND p.status NOT IN ('delivered', 'unrouted')"
    " AND (pe.step_index, p.id) < (e.step_index, o.id))"
    " ORDER BY o.id LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED"
)
_RECORD = (
    "UPDATE agents_outboxmessage o SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_at,"
    " last_error = v.error, endpoint_id = v.endpoint, delivered_at = v.delivered"
    " FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::timestamptz[], %s::text[], %s::bigint[],"
    " %s::timestamptz[]) AS v(id, status, attempts, next_at, error, endpoint, delivered) WHERE o.id = v.id"
)


def _record(messages: list[OutboxMessage]) -> None:
    """Write the batch's outcomes in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD,
            [
                [m.pk for m in messages],
                [str(m.status) for m in messages],
                [m.attempts for m in messages],
                [m.next_attempt_at for m in messages],
                [m.last_error for m in messages],
                [m.endpoint_id for m in messages],
                [m.delivered_at for m in messages],
            ],
        )


class _Clients:
    """The batch's clients, one per endpoint, made (egress check, secrets decrypted) on first use."""

    def __init__(self) -> None:
        self._made: dict[int, EndpointClient] = {}

    def get(self, endpoint: Endpoint) -> EndpointClient:
        if endpoint.pk not in self._made:
            self._made[endpoint.pk] = EndpointClient(endpoint)
        return self._made[endpoint.pk]

    def close(self) -> None:
        for client in self._made.values():
            client.close()
        self._made.clear()


def _fail(message: OutboxMessage, status: str, error: str) -> None:
    message.status, message.last_error, message.next_attempt_at = status, error[:500], None
    audit_record(
        actor=RELAY_ACTOR,
        verb="outbox.dead_lettered" if status == DeliveryStatus.DEAD else "outbox.failed",
        target_type="outbox_message",
        target_id=message.pk,
        data={
            "kind": message.kind,
            "idempotency_key": message.effect.idempotency_key,
            "endpoint": message.endpoint.name if message.endpoint else None,
            "attempts": message.attempts,
            "error": message.last_error,
        },
    )


def _deliver_locked(message: OutboxMessage, endpoints: dict[str, Endpoint], clients: _Clients) -> float | None:
    """Inside the batch's transaction: send ``message`` once and set its outcome on the row
    object (saved with the batch). The seconds to wait before its next attempt, or None."""
    endpoint = endpoints.get(message.kind)
    if endpoint is None:
        message.status, message.next_attempt_at = DeliveryStatus.UNROUTED, None
        message.last_error = f"no enabled endpoint takes {message.kind!r}"
        return None
    message.endpoint = endpoint
    message.attempts += 1
    try:
        answer = clients.get(endpoint).post(
            body=envelope(message), idempotency_key=message.effect.idempotency_key, attempt=message.attempts
        )
    except (EgressRefused, SecretUnreadable) as exc:
        _fail(message, DeliveryStatus.FAILED, str(exc))
        return None
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        if 200 <= answer.status < 300:
            message.status, message.delivered_at = DeliveryStatus.DELIVERED, timezone.now()
            message.last_error, message.next_attempt_at = "", None
            return None
        error = f"HTTP {answer.status}"
        if 400 <= answer.status < 500 and answer.status not in RETRYABLE_4XX:
            _fail(message, DeliveryStatus.FAILED, error)
            return None
    if message.attempts >= settings.VIGIL_RELAY_MAX_ATTEMPTS:
        _fail(message, DeliveryStatus.DEAD, f"{error} (attempt {message.attempts}, the last)")
        return None
    delay = relay_backoff(message.attempts)
    message.status, message.last_error = DeliveryStatus.RETRYING, error[:500]
    message.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    return delay


def relay_batch(*, task_id: int | None = None, limit: int = 50, seconds: float | None = None) -> tuple[int, int, int]:
    """Send up to ``limit`` due messages (of ``task_id`` only, if given) in one transaction
    that holds their rows and records every outcome: (messages sent or settled,
    delivered, waiting for a retry).
    A relay killed mid-batch records nothing, and the batch is sent again under the same keys.

    The batch holds its rows' locks while it sends, so it has a budget (``seconds``,
    VIGIL_RELAY_BATCH_SECONDS by default): once spent, it takes no further message and leaves
    the rest as they were, unlocked at commit, for the next batch. The first message is always
    sent, and each call ends at its endpoint's timeout (config.egress), so a batch overruns
    its budget by one call at most.
    """
    budget = settings.VIGIL_RELAY_BATCH_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + budget
    retries: dict[int, float] = {}
    with transaction.atomic():
        # Losing this commit in a database crash only means sending the batch again under
        # its keys, which the receiver applies once: no need to wait for the disk.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            task_filter = "AND e.task_id = %(task_id)s" if task_id is not None else ""
            params = {"task_id": task_id, "limit": limit, "now": timezone.now()}
            cursor.execute(_DUE.format(task_filter=task_filter), params)
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return 0, 0, 0
        messages = list(OutboxMessage.objects.filter(pk__in=ids).select_related("effect").order_by("pk"))
        endpoints: dict[str, Endpoint] = {}
        for endpoint in Endpoint.objects.select_related("credential").filter(enabled=True).order_by("pk"):
            for kind in endpoint.kinds:
                endpoints.setdefault(kind, endpoint)
        clients = _Clients()
        settled: list[OutboxMessage] = []
        try:
            for message in messages:
                if settled and time.monotonic() >= deadline:
                    logger.info(
                        "relay.batch_budget_spent",
                        extra={"settled": len(settled), "left": len(messages) - len(settled)},
                    )
                    break
                retry_in = _deliver_locked(message, endpoints, clients)
                settled.append(message)
                if retry_in is not None:
                    retries[message.effect.task_id] = retry_in
        finally:
            clients.close()
        messages = settled
        _record(messages)
    for task, delay in retries.items():
        relay_send(task_id=task, countdown=delay)
    return len(messages), sum(m.status == DeliveryStatus.DELIVERED for m in messages), len(retries)


def relay_deliver_task(*, task_id: int) -> int:
    """Deliver ``task_id``'s messages in order, as far as they go now: the number delivered.
    Stops at a message another relay holds, one waiting for its retry (a message is sent for
    it then), or one failed or dead."""
    delivered = 0
    while True:
        settled, sent, retrying = relay_batch(task_id=task_id, limit=1)
        delivered += sent
        if not settled or retrying:
            return delivered


def relay_drain(*, seconds: float, limit: int | None = None) -> int:
    """Batches of due messages of the current schema until none is due or ``seconds`` passed:
    the number delivered (the sweep's work)."""
    deadline = time.monotonic() + seconds
    delivered = 0
    while time.monotonic() < deadline:
        settled, sent, _ = relay_batch(limit=limit or settings.VIGIL_RELAY_BATCH)
        delivered += sent
        if not settled:
            break
    return delivered


def relay_drain_send(*, schema: str | None = None) -> None:
    """Send ``agents.relay_drain`` for the current schema (failures logged, as relay_send)."""
    from agents.tasks import relay_drain as drain_task

    kwargs = {"schema": schema or connection.schema_name}
    options: dict[str, Any] = {"queue": "relay", "argsrepr": "()", "kwargsrepr": repr(kwargs), **_SEND_OPTIONS}
    try:
        drain_task.apply_async(kwargs=kwargs, **options)
    except (KombuError, OSError) as exc:
        logger.warning("relay.send_failed", extra={**kwargs, "error": str(exc)[:200]})


def relay_due(*, limit: int = 1000) -> list[int]:
    """Tasks of the current schema with a message to deliver now (the sweep's work)."""
    now = timezone.now()
    due = OutboxMessage.objects.filter(status__in=TO_DELIVER).exclude(next_attempt_at__gt=now)
    return list(due.order_by().values_list("effect__task_id", flat=True).distinct()[:limit])


@transaction.atomic
def outbox_replay(*, message_id: int, actor: Actor) -> OutboxMessage:
    """Send a dead, failed or unrouted message again from its first attempt (audited). Its
    task's later messages follow once it is delivered."""
    message = (
        OutboxMessage.objects.select_for_update(of=("self",), no_key=True)
        .select_related("effect")
        .filter(pk=message_id)
        .first()
    )
    if message is None:
        raise OutboxNotReplayable(f"no outbox message {message_id}", id=message_id)
    if message.status not in REPLAYABLE:
        raise OutboxNotReplayable(
            f"outbox message {message_id} is {message.status}: only dead, failed or unrouted messages are replayed",
            id=message_id,
            status=message.status,
        )
    before = {"status": message.status, "attempts": message.attempts, "error": message.last_error}
    message.status, message.attempts, message.next_attempt_at, message.last_error = DeliveryStatus.PENDING, 0, None, ""
    message.save(update_fields=["status", "attempts", "next_attempt_at", "last_error"])
    audit_record(
        actor=actor,
        verb="outbox.replayed",
        target_type="outbox_message",
        target_id=message.pk,
        data={"kind": message.kind, "idempotency_key": message.effect.idempotency_key, "before": before},
    )
    relay_kick(task_id=message.effect.task_id)
    return message
