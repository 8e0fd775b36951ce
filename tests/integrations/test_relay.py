"""The outbox relay in this process, against a real HTTP receiver on 127.0.0.1: signed
deliveries under the effect's Idempotency-Key, retries on 5xx, a stop on 4xx, dead letters and
their replay, order per task, and a tool answered by the tenant's endpoint."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from agents.effects import effect_plan
from agents.exceptions import ToolError
from agents.integrations.relay import envelope, outbox_replay, relay_deliver_task, relay_due
from agents.integrations.services import endpoint_update
from agents.integrations.signing import SIGNATURE_HEADER, signature
from agents.models import DeliveryStatus, OutboxMessage
from agents.tools import TOOLS
from governance.models import AuditEvent
from governance.verification import audit_chain_verify
from tenants.models import Tenant
from tests.integrations.support import (
    ADMIN,
    SECRET,
    TOKEN,
    ScriptedReceiver,
    endpoint_for_receiver,
    message_status,
    relay_until,
    reply_task,
)

pytestmark = pytest.mark.django_db


def _verbs(message: OutboxMessage) -> list[str]:
    events = AuditEvent.objects.filter(target_type="outbox_message", target_id=str(message.pk)).order_by("seq")
    return list(events.values_list("verb", flat=True))


def test_a_reply_is_delivered_once_signed_under_its_effect_key(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint = endpoint_for_receiver(receiver)
    task, message = reply_task()

    assert relay_deliver_task(task_id=task.pk) == 1

    key = message.effect.idempotency_key
    assert key == f"task:{task.pk}:step:1"
    assert receiver.keys() == [key] and receiver.ledger.bad_signatures == 0
    body = receiver.applied()[key]
    assert (body["kind"], body["task_id"], body["payload"]["to"]) == ("reply", task.pk, "dana@example.com")
    headers = receiver.headers[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Vigil-Signature"].startswith("t=") and ",v1=" in headers["Vigil-Signature"]
    delivered = OutboxMessage.objects.get(pk=message.pk)
    assert (delivered.status, delivered.attempts, delivered.endpoint_id) == ("delivered", 1, endpoint.pk)
    assert delivered.delivered_at is not None
    # Nothing left: a second run sends nothing.
    assert relay_deliver_task(task_id=task.pk) == 0 and len(receiver.keys()) == 1


def test_the_body_is_the_same_bytes_on_every_attempt(in_acme: Tenant) -> None:
    _, message = reply_task()
    assert envelope(message) == envelope(OutboxMessage.objects.select_related("effect").get(pk=message.pk))
    assert json.loads(envelope(message))["idempotency_key"] == message.effect.idempotency_key


def test_two_500s_are_retried_and_the_effect_is_applied_once(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint_for_receiver(receiver)
    _, message = reply_task()
    receiver.answers = [500, 500]

    delivered = relay_until(message, "delivered")

    key = message.effect.idempotency_key
    assert receiver.keys() == [key, key, key]
    assert list(receiver.applied()) == [key]
    assert (delivered.attempts, delivered.last_error) == (3, "")


def test_a_4xx_fails_the_message_for_good_and_holds_the_tasks_later_messages(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint_for_receiver(receiver)
    task, message = reply_task()
    later = _second_message(message)
    receiver.answers = [422]

    assert relay_deliver_task(task_id=task.pk) == 0

    failed = OutboxMessage.objects.get(pk=message.pk)
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 1, "HTTP 422")
    assert message_status(later) == "pending"  # never overtakes the failed one
    assert receiver.keys() == [message.effect.idempotency_key]
    assert relay_deliver_task(task_id=task.pk) == 0 and len(receiver.keys()) == 1
    assert _verbs(message) == ["outbox.failed"]

    outbox_replay(message_id=message.pk, actor=ADMIN)
    assert relay_deliver_task(task_id=task.pk) == 2
    assert receiver.keys()[1:] == [message.effect.idempotency_key, later.effect.idempotency_key]
    assert _verbs(message) == ["outbox.failed", "outbox.replayed"]
    assert audit_chain_verify().ok


def test_attempts_spent_make_a_dead_letter_that_a_replay_delivers(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver, settings: object
) -> None:
    settings.VIGIL_RELAY_MAX_ATTEMPTS = 3  # type: ignore[attr-defined]
    endpoint_for_receiver(receiver)
    _, message = reply_task()
    receiver.answers = [503, 503, 503]

    dead = relay_until(message, "dead")

    assert dead.attempts == 3 and dead.last_error.startswith("HTTP 503")
    assert _verbs(message) == ["outbox.dead_lettered"]
    event = AuditEvent.objects.get(target_type="outbox_message", target_id=str(message.pk))
    assert event.data["attempts"] == 3

    replayed = outbox_replay(message_id=message.pk, actor=ADMIN)
    assert (replayed.status, replayed.attempts) == ("pending", 0)
    relay_until(message, "delivered")
    assert list(receiver.applied()) == [message.effect.idempotency_key]
    with pytest.raises(Exception, match="only dead, failed or unrouted"):
        outbox_replay(message_id=message.pk, actor=ADMIN)


def test_a_message_of_a_kind_no_endpoint_takes_is_unrouted(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint_for_receiver(receiver, kinds=["refund"])
    task, message = reply_task()

    assert relay_deliver_task(task_id=task.pk) == 0

    assert message_status(message) == DeliveryStatus.UNROUTED and receiver.keys() == []


def test_messages_of_a_task_go_in_step_order(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint_for_receiver(receiver)
    task, first = reply_task()
    second = _second_message(first)
    receiver.answers = [500]

    assert relay_deliver_task(task_id=task.pk) == 0  # the first waits for its retry
    assert message_status(second) == "pending" and receiver.keys() == [first.effect.idempotency_key]

    relay_until(second, "delivered")
    assert receiver.keys()[1:] == [first.effect.idempotency_key, second.effect.idempotency_key]


def test_a_disabled_endpoint_receives_nothing(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint = endpoint_for_receiver(receiver)
    endpoint_update(name=endpoint.name, enabled=False, actor=ADMIN)
    task, message = reply_task()

    relay_deliver_task(task_id=task.pk)

    assert message_status(message) == "unrouted" and receiver.keys() == []


def test_lookup_order_answers_from_the_tenants_order_endpoint(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint_for_receiver(receiver, kinds=["lookup_order"])

    result, effect = effect_plan(tool=TOOLS["lookup_order"], arguments={"order_id": "AB1234"}, idempotency_key="k")

    assert (result, effect) == ({"order_id": "AB1234", "status": "shipped"}, None)
    assert receiver.headers[0]["Authorization"] == f"Bearer {TOKEN}" and receiver.ledger.bad_signatures == 0
    receiver.answers = [502]
    with pytest.raises(ToolError, match="answered HTTP 502"):
        effect_plan(tool=TOOLS["lookup_order"], arguments={"order_id": "AB1234"}, idempotency_key="k")


def test_lookup_order_without_an_endpoint_is_an_error_not_a_made_up_answer(in_acme: Tenant) -> None:
    with pytest.raises(ToolError, match="no enabled endpoint takes 'lookup_order'"):
        effect_plan(tool=TOOLS["lookup_order"], arguments={"order_id": "AB1234"}, idempotency_key="k")


def test_the_receiver_refuses_a_wrong_signature(in_acme: Tenant, receiver: ScriptedReceiver) -> None:
    from agents.integrations.signing import signature, signature_verify

    body = b'{"a":1}'
    good = signature(SECRET, 1_700_000_000, body)
    assert signature_verify(SECRET, good, body, now=1_700_000_100)
    assert not signature_verify(SECRET, good, body + b" ", now=1_700_000_100)
    assert not signature_verify("another-secret-0123", good, body, now=1_700_000_100)
    assert not signature_verify(SECRET, good, body, now=1_700_000_000 + 301)  # too old: a replay


def _second_message(first: OutboxMessage) -> OutboxMessage:
    """A second outbox message of the same task, one step later (a refund after the reply)."""
    from agents.models import Effect

    effect = Effect.objects.create(
        idempotency_key=f"{first.effect.idempotency_key}:next",
        task_id=first.effect.task_id,
        step_index=first.effect.step_index + 1,
        tool="issue_refund",
        arguments_hash="0" * 64,
        result={"refunded": True},
    )
    OutboxMessage.objects.create(effect=effect, kind="refund", payload={"order_id": "AB1234", "amount": 25})
    return OutboxMessage.objects.select_related("effect").get(effect=effect)


def test_the_sweep_finds_the_tasks_with_a_message_due(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint_for_receiver(receiver)
    task, _ = reply_task()

    assert task.pk in relay_due()
    relay_deliver_task(task_id=task.pk)
    assert task.pk not in relay_due()


def test_the_demo_receiver_lists_what_it_applied(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver
) -> None:
    endpoint_for_receiver(receiver)
    task, message = reply_task()
    relay_deliver_task(task_id=task.pk)

    with urllib.request.urlopen(f"http://127.0.0.1:{receiver.server_address[1]}/", timeout=10) as response:
        page = response.read().decode()

    assert "1 effects applied from 1 requests" in page and message.effect.idempotency_key in page


def test_a_captured_delivery_replayed_under_another_key_is_not_a_new_effect(
    in_acme: Tenant, receiver: ScriptedReceiver
) -> None:
    body = b'{"idempotency_key":"task:1:step:2","kind":"refund","payload":{"amount":25}}'
    signed = signature(SECRET, int(time.time()), body)

    def post(key: str) -> int:
        request = urllib.request.Request(  # noqa: S310  (the test's own receiver)
            receiver.url, data=body, method="POST", headers={SIGNATURE_HEADER: signed, "Idempotency-Key": key}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310  (the test's own receiver)
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            return int(refused.code)

    assert post("task:1:step:2") == 200
    assert post("replayed-under-a-new-key") == 400
    assert list(receiver.applied()) == ["task:1:step:2"]
