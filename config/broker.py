"""Kombu's Redis transport, minus a per-message cost.

Kombu's Redis channel builds a new redis-py client for every message it publishes, and a
client's constructor fills a table of ~170 response callbacks: about a quarter of the CPU
of an ``apply_async``. A client is a thin wrapper around the channel's connection pool (which
is what holds the sockets, and is thread-safe), so one client per channel does the same
job. Selected with ``CELERY_BROKER_TRANSPORT``; the broker URL stays ``redis://…``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client is not None:
            yield client
            return
        if self._shared_client is None:
            self._shared_client = self._create_client()  # type: ignore[attr-defined]  # private; not in the stubs
        yield self._shared_client


class Transport(redis.Transport):
    Channel = Channel
