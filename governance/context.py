"""The correlation id of the work in hand: set by the HTTP middleware, by commands and (later)
by Celery task headers; read by every audit event and log line."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

_correlation_id: ContextVar[str | None] = ContextVar("vigil_correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def get_correlation_id() -> str:
    value = _correlation_id.get()
    if value is None:
        value = new_correlation_id()
        _correlation_id.set(value)
    return value


def set_correlation_id(value: str | None) -> None:
    _correlation_id.set(value)
