"""A real HTTP receiver for the relay's deliveries, run in a thread of the test process: it
checks every signature, records each request's Idempotency-Key and headers, applies a key once,
and answers what the test scripts (``answers``), optionally holding a request (``held``)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agents.integrations.relay import relay_deliver_task
from agents.integrations.services import credential_create, endpoint_create
from agents.integrations.signing import SIGNATURE_HEADER, signature_verify
from agents.models import DeliveryStatus, Endpoint, OutboxMessage, Task
from config.demo_receiver import ReceiverHandler, ReceiverServer
from governance.actors import Actor
from tests.agents.helpers_execution import advance_here, triage_task_after_first_step, unique, wait_until

SECRET = "whsec-test-0123456789abcdef"
TOKEN = "tok-s3cr3t-never-shown-4711"
ADMIN = Actor(type="user", id="1", label="alice@acme.example")


class ScriptedHandler(ReceiverHandler):
    server: ScriptedReceiver

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver = self.server
        if not signature_verify(receiver.secret, self.headers.get(SIGNATURE_HEADER, ""), raw):
            with receiver.ledger.lock:
                receiver.ledger.bad_signatures += 1
            self._answer(401, {"error": "bad signature"})
            return
        key = self.headers.get("Idempotency-Key", "")
        body = json.loads(raw)
        if body.get("idempotency_key") != key:  # the demo receiver's rule: only the body is signed
            self._answer(400, {"error": "Idempotency-Key differs from the signed body's idempotency_key"})
            return
        with receiver.ledger.lock:
            status = receiver.answers.pop(0) if receiver.answers else 200
            receiver.headers.append(dict(self.headers.items()))
        if status >= 300:
            with receiver.ledger.lock:
                receiver.ledger.requests.append(key)
            self._answer(status, {"error": "scripted"})
            return
        receiver.ledger.apply(key, body)
        if receiver.hold.is_set():
            receiver.arrived.set()
            receiver.released.wait(timeout=60)
        answer = {}
        if body["kind"] == "lookup_order":
            answer = {"order_id": body["payload"].get("order_id"), "status": "shipped"}
        with contextlib.suppress(OSError):  # the relay that sent it may be gone
            self._answer(200, answer)


class ScriptedReceiver(ReceiverServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SECRET, ScriptedHandler)
        self.answers: list[int] = []
        self.headers: list[dict[str, str]] = []
        self.hold = threading.Event()
        self.arrived = threading.Event()
        self.released = threading.Event()

    def keys(self) -> list[str]:
        with self.ledger.lock:
            return list(self.ledger.requests)

    def applied(self) -> dict[str, dict[str, Any]]:
        with self.ledger.lock:
            return {key: r.body for key, r in self.ledger.applied.items()}


@pytest.fixture
def receiver() -> Iterator[ScriptedReceiver]:
    server = ScriptedReceiver().start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def loopback_allowed(settings: Any, celery_env: dict[str, str]) -> None:
    """The operator allows the tests' receiver on 127.0.0.1; fast retries. A retry's relay
    message goes to the session's broker (celery_env), never to the development one."""
    settings.VIGIL_EGRESS_ALLOW = ["127.0.0.1"]
    settings.VIGIL_RELAY_BASE_DELAY = 0.01
    settings.VIGIL_RELAY_MAX_DELAY = 0.05


WORKER_ENV = {"VIGIL_EGRESS_ALLOW": "127.0.0.1", "VIGIL_RELAY_BASE_DELAY": "0.05", "VIGIL_RELAY_MAX_DELAY": "0.2"}


def endpoint_for_receiver(receiver: ScriptedReceiver, *, kinds: list[str] | None = None) -> Endpoint:
    """Every kind goes to the receiver, with a bearer credential and the receiver's secret."""
    credential = credential_create(name=unique("token"), kind="bearer", secret=TOKEN, actor=ADMIN)
    return endpoint_create(
        name=unique("orders"),
        url=receiver.url + "hooks",
        kinds=kinds or ["reply", "refund", "restart", "lookup_order"],
        signing_secret=SECRET,
        credential=credential.name,
        timeout_seconds=5,
        actor=ADMIN,
    )


@pytest.fixture
def committed_endpoint(committed: None, receiver: ScriptedReceiver, loopback_allowed: None) -> Iterator[Endpoint]:
    """acme's endpoint to the receiver, committed for the workers; removed afterwards so that
    later tests' effects are not sent to a receiver that is gone."""
    from config.connection import connection
    from tests.agents.helpers_execution import use_tenant

    use_tenant("acme")
    endpoint = endpoint_for_receiver(receiver)
    try:
        yield endpoint
    finally:
        use_tenant("acme")
        Endpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
        connection.set_schema_to_public()


def reply_task() -> tuple[Task, OutboxMessage]:
    """A triage task whose second step (send_reply) ran in this process: one outbox message."""
    task = triage_task_after_first_step()
    assert advance_here(task.pk) == "stepped"
    return task, OutboxMessage.objects.select_related("effect").get(effect__task=task)


def message_status(message: OutboxMessage) -> str:
    return str(OutboxMessage.objects.get(pk=message.pk).status)


def relay_until(message: OutboxMessage, status: str, *, timeout: float = 20) -> OutboxMessage:
    """Run the relay in this process until ``message`` has ``status`` (waiting out backoffs)."""

    def check() -> OutboxMessage | None:
        relay_deliver_task(task_id=message.effect.task_id)
        current = OutboxMessage.objects.get(pk=message.pk)
        return current if current.status == status else None

    return wait_until(check, timeout=timeout, what=f"outbox message {message.pk} {status}")


__all__ = ["DeliveryStatus", "committed_endpoint", "loopback_allowed", "receiver"]
