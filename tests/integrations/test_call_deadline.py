"""Each outbound call ends at its deadline, connect to last byte, not at a timeout per read:
against a real local server that drips its answer one byte every 0.2 s (each byte well within
any read timeout), the call gives up at its endpoint's ``timeout_seconds``, the delivery is
retried and dead-lettered as for any timeout, and a relay batch whose budget is spent leaves
its other messages for the next batch. Single sign-on's calls to the identity provider share
the same connections (config.egress), so their deadline too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from agents.integrations.http import endpoint_post
from agents.integrations.relay import relay_batch
from agents.integrations.services import endpoint_create
from agents.models import Endpoint, OutboxMessage
from governance import sso
from governance.models import AuditEvent, SsoProvider
from tenants.models import Tenant
from tests.agents.helpers_execution import unique
from tests.integrations.support import ADMIN, SECRET, relay_until, reply_task

pytestmark = pytest.mark.django_db

DRIP_SECONDS = 0.2
BODY_BYTES = 100  # 20 s of dripping: far past the endpoint's 1 s deadline
TIMEOUT = 1.0


class DripHandler(BaseHTTPRequestHandler):
    server: DripServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(self.headers.get("Idempotency-Key", ""))
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {BODY_BYTES}\r\n\r\n".encode()
        if self.server.drip_head:
            self._drip(head + b"x" * BODY_BYTES)
            return
        self.wfile.write(head)
        self.wfile.flush()
        self._drip(b"x" * BODY_BYTES)

    def _drip(self, data: bytes) -> None:
        for byte in data:
            if self.server.stopped.wait(DRIP_SECONDS):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:  # the caller gave up
                return

    def log_message(self, format: str, *args: Any) -> None:
        pass


class DripServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), DripHandler)
        self.requests: list[str] = []
        self.stopped = threading.Event()
        self.drip_head = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _dripping_endpoint(server: DripServer, *, kinds: list[str] | None = None) -> Endpoint:
    return endpoint_create(
        name=unique("slow"),
        url=server.url,
        kinds=kinds or ["reply", "refund", "restart", "lookup_order"],
        signing_secret=SECRET,
        credential=None,
        timeout_seconds=TIMEOUT,
        actor=ADMIN,
    )


@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "status line"])
def test_a_call_to_an_endpoint_dripping_its_answer_ends_at_its_deadline(
    in_acme: Tenant, loopback_allowed: None, drip: DripServer, drip_head: bool
) -> None:
    drip.drip_head = drip_head
    endpoint = _dripping_endpoint(drip)
    started = time.monotonic()

    with pytest.raises(TimeoutError, match="longer than its 1 seconds"):
        endpoint_post(endpoint=endpoint, body=b"{}", idempotency_key="deadline-test")

    # Every byte came within 0.2 s, so a timeout per read would have waited for all of them.
    assert time.monotonic() - started < BODY_BYTES * DRIP_SECONDS / 2
    assert drip.requests == ["deadline-test"]


def test_a_delivery_to_a_dripping_endpoint_is_retried_then_dead_lettered_like_any_timeout(
    in_acme: Tenant, loopback_allowed: None, drip: DripServer, settings: Any
) -> None:
    settings.VIGIL_RELAY_MAX_ATTEMPTS = 2
    endpoint = _dripping_endpoint(drip)
    _, message = reply_task()
    started = time.monotonic()

    dead = relay_until(message, "dead")

    assert time.monotonic() - started < BODY_BYTES * DRIP_SECONDS / 2
    assert (dead.attempts, dead.endpoint_id) == (2, endpoint.pk)
    assert dead.last_error.startswith("TimeoutError: the call took longer than its 1 seconds")
    assert dead.last_error.endswith("(attempt 2, the last)")
    key = message.effect.idempotency_key
    assert drip.requests == [key, key]
    verbs = AuditEvent.objects.filter(target_type="outbox_message", target_id=str(message.pk))
    assert list(verbs.values_list("verb", flat=True)) == ["outbox.dead_lettered"]


def test_a_batch_whose_budget_is_spent_leaves_its_other_messages_for_the_next_batch(
    in_acme: Tenant, loopback_allowed: None, drip: DripServer, settings: Any
) -> None:
    settings.VIGIL_RELAY_BATCH_SECONDS = TIMEOUT / 2  # spent by the first call, which ends at 1 s
    _dripping_endpoint(drip)
    _, first = reply_task()
    _, second = reply_task()

    settled, delivered, retrying = relay_batch(limit=10)

    assert (settled, delivered, retrying) == (1, 0, 1)
    assert drip.requests == [first.effect.idempotency_key]
    timed_out = OutboxMessage.objects.get(pk=first.pk)
    assert (timed_out.status, timed_out.attempts) == ("retrying", 1)
    assert timed_out.last_error.startswith("TimeoutError")
    left = OutboxMessage.objects.get(pk=second.pk)
    assert (left.status, left.attempts, left.last_error) == ("pending", 0, "")

    # The next batch takes the message left behind (the first waits for its retry).
    OutboxMessage.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert relay_batch(limit=10, seconds=0)[0] == 1
    assert drip.requests == [first.effect.idempotency_key, second.effect.idempotency_key]
    assert OutboxMessage.objects.get(pk=second.pk).attempts == 1


def test_the_identity_providers_documents_are_fetched_within_a_deadline_too(
    in_acme: Tenant, loopback_allowed: None, drip: DripServer
) -> None:
    issuer = drip.url.removesuffix("/hooks")
    provider = SsoProvider(issuer=issuer, client_id="c", client_secret_encrypted="-", tid="acme-org")
    started = time.monotonic()

    with pytest.raises(sso.SsoError, match="did not answer: TimeoutError"):
        sso.discovery(provider)

    assert time.monotonic() - started < BODY_BYTES * DRIP_SECONDS / 2
    assert sso.TIMEOUT_SECONDS < BODY_BYTES * DRIP_SECONDS / 2
