"""The one event-publishing hook. Services call ``publish`` inside their transaction; the event
goes to every subscriber after commit (never for a rolled-back change). The live stream is the
standing subscriber (``live_send``): it numbers each event per tenant and sends it to the
group ``oversight.<schema>``; tests may subscribe a recorder too.

Kinds and what they carry besides ``type``, ``schema`` (and, on the stream, ``seq`` and the
``agent_id`` the sockets filter on, looked up from ``task_id`` when the publisher gave none):
- ``task.state`` (task_id, agent_id, from_state, to_state, reason), ``task.step`` (task_id, index);
- ``approval.requested`` (approval_id, task_id, tool, required_role), ``approval.assigned`` /
  ``approval.released`` / ``approval.reminder`` / ``approval.breached`` (approval_id, task_id,
  agent_id, user_id: the reviewer concerned), ``approval.decided`` (approval_id, task_id,
  status, decided_by);
- ``agent.paused`` / ``agent.resumed`` (agent_id, agent);
- ``usage.near_limit`` (limit: the limit's name, used, max; agent_id when the limit is one
  agent's, none for the tenant's own limits).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

from config.connection import connection
from governance import live

logger = logging.getLogger(__name__)

Event = dict[str, Any]
_subscribers: list[Callable[[Event], None]] = []


def subscribe(callback: Callable[[Event], None]) -> Callable[[], None]:
    """Add a subscriber; returns a function that removes it."""
    _subscribers.append(callback)
    return lambda: _subscribers.remove(callback) if callback in _subscribers else None


def _deliver(event: Event) -> None:
    for callback in list(_subscribers):
        try:
            callback(event)
        except Exception:  # a broken subscriber must not break the others or the caller
            logger.exception("event.subscriber_failed", extra={"event_type": event.get("type")})


def publish(event_type: str, **payload: Any) -> None:
    event = {"type": event_type, "schema": connection.schema_name, **payload}
    transaction.on_commit(lambda: _deliver(event))


# A task's agent never changes, so each process remembers it for the events that name only the
# task (a step), rather than reading it again for every step.
_AGENT_OF_TASK: dict[int, int] = {}
_AGENT_OF_TASK_MAX = 10_000


def _agent_id(event: Event) -> int | None:
    if event.get("agent_id") is not None:
        return int(event["agent_id"])
    task_id = event.get("task_id")
    if task_id is None:
        return None
    agent_id = _AGENT_OF_TASK.get(task_id)
    if agent_id is None:
        from agents.models import Task

        agent_id = Task.objects.filter(pk=task_id).values_list("agent_id", flat=True).first()
        if agent_id is None:
            return None
        if len(_AGENT_OF_TASK) >= _AGENT_OF_TASK_MAX:
            _AGENT_OF_TASK.clear()
        _AGENT_OF_TASK[task_id] = agent_id
    return agent_id


def live_send(event: Event) -> None:
    """Send ``event`` to its tenant's live group with the tenant's next sequence number and the
    id of the agent it concerns (what the sockets filter on)."""
    schema = event["schema"]
    if schema == "public":
        return
    layer = get_channel_layer()
    if layer is None:
        return
    frame = {**event, "agent_id": _agent_id(event)}
    # Numbered and sent on the sender thread, off the caller's path: a worker's next step does
    # not wait for two Redis round trips. The thread runs the sends in the order they were
    # published, and numbers each one before its first await, so numbers follow that order.
    asyncio.run_coroutine_threadsafe(_send(layer, schema, frame), _sender_loop())


async def _send(layer: Any, schema: str, frame: Event) -> None:
    try:
        frame["seq"] = live.sequence_next(schema=schema)
        # Encoded once here rather than once per socket: every socket that may see the event
        # sends these very bytes.
        text = json.dumps({key: value for key, value in frame.items() if key != "schema"})
        message = {"type": "oversight.event", "event": frame, "text": text}
        await asyncio.wait_for(layer.group_send(live.group_name(schema), message), SEND_TIMEOUT_SECONDS)
    except Exception:  # the layer may drop events anyway; pages resync on a gap
        logger.exception("event.live_send_failed", extra={"event_type": frame.get("type"), "schema": schema})


SEND_TIMEOUT_SECONDS = 5.0
_sender: tuple[int, asyncio.AbstractEventLoop] | None = None
_sender_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    """An event loop on a daemon thread of this process, kept for its life, so the channel
    layer keeps its Redis connection between sends (a loop per send, as ``async_to_sync`` makes
    outside a server, would connect for every event). Started lazily and again after a fork:
    a Celery pool child inherits the parent's record but not its thread."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="live-sender", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


subscribe(live_send)
