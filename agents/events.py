"""The one event-publishing hook. Services call ``publish`` inside their transaction; the event
goes to every subscriber after commit (never for a rolled-back change). The live-updates work
subscribes Channels here; tests subscribe a recorder."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from config.connection import connection

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
