"""The relay on real workers (the ``relay`` queue): a step that writes an outbox message sends
the relay's message after commit, and the effect reaches the receiver exactly once per key even
when the relay's process is SIGKILLed mid-delivery or the receiver answers 500 twice."""

from __future__ import annotations

import os
import signal

from agents.models import Endpoint, OutboxMessage
from agents.tasks import relay_sweep
from tests.agents.helpers_execution import (
    StartWorker,
    broker_purge,
    only_our_workers,
    use_tenant,
    wait_until,
    worker_start,
)
from tests.integrations.support import (
    WORKER_ENV,
    ScriptedReceiver,
    reply_task,
)

__all__ = ["only_our_workers", "worker_start"]


def _delivered(message: OutboxMessage) -> OutboxMessage | None:
    current = OutboxMessage.objects.get(pk=message.pk)
    return current if current.status == "delivered" else None


def test_a_relay_killed_mid_delivery_redelivers_under_the_same_key_applied_once(
    committed_endpoint: Endpoint, worker_start: StartWorker, receiver: ScriptedReceiver
) -> None:
    use_tenant("acme")
    receiver.hold.set()  # the receiver applies the first request, then keeps its answer back
    worker = worker_start(env=WORKER_ENV, concurrency=1)

    _, message = reply_task()  # committed: the step's relay message is on the queue

    assert receiver.arrived.wait(timeout=30), "the relay never called the receiver"
    (child,) = worker.children()
    os.kill(child, signal.SIGKILL)  # the relay dies holding the message's row, before recording it
    receiver.hold.clear()
    receiver.released.set()

    delivered = wait_until(lambda: _delivered(message), timeout=30, what="the message delivered after the kill")
    key = message.effect.idempotency_key
    assert receiver.keys() == [key, key]  # sent again, under the same key
    assert list(receiver.applied()) == [key]  # and applied once
    assert delivered.attempts == 1  # the killed attempt recorded nothing
    assert receiver.ledger.bad_signatures == 0


def test_two_500s_on_a_worker_end_in_one_applied_effect(
    committed_endpoint: Endpoint, worker_start: StartWorker, receiver: ScriptedReceiver
) -> None:
    use_tenant("acme")
    receiver.answers = [500, 500]
    worker_start(env=WORKER_ENV, concurrency=2)

    _, message = reply_task()

    delivered = wait_until(lambda: _delivered(message), timeout=30, what="the message delivered after two 500s")
    key = message.effect.idempotency_key
    assert receiver.keys() == [key, key, key]
    assert list(receiver.applied()) == [key]
    assert delivered.attempts == 3


def test_the_sweep_drains_a_message_whose_relay_message_was_lost(
    committed_endpoint: Endpoint, worker_start: StartWorker, receiver: ScriptedReceiver
) -> None:
    use_tenant("acme")
    _, message = reply_task()
    broker_purge()  # the step's relay message is lost before any worker took it
    worker_start(env=WORKER_ENV, concurrency=1)
    pending = OutboxMessage.objects.get(pk=message.pk)
    assert (pending.status, pending.next_attempt_at) == ("pending", None), pending.last_error

    assert relay_sweep() >= 1  # what beat runs: one agents.relay_drain for acme

    use_tenant("acme")
    wait_until(lambda: _delivered(message), timeout=30, what="the message delivered by the sweep's drain")
    assert list(receiver.applied()) == [message.effect.idempotency_key]
