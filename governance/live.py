"""The live stream's shared pieces: the per-tenant group, its sequence numbers and the tickets
that let an API client open a socket without putting its token in the URL.

Sequence numbers and tickets live in Redis (the project's ``REDIS_URL``), keyed by schema, so
every web and worker process agrees on them and a ticket issued on one tenant's host is
unknown on any other.
"""

from __future__ import annotations

import secrets
from functools import lru_cache

import redis
from django.conf import settings

TICKET_TTL_SECONDS = 30
# A ticket travels as a WebSocket subprotocol next to ``SUBPROTOCOL``: browsers and most clients
# can set that header, and unlike a query string it never lands in access logs.
SUBPROTOCOL = "vigil.live"
TICKET_PREFIX = "vigil.ticket."


def group_name(schema: str) -> str:
    """The channel-layer group every socket of tenant ``schema`` joins."""
    return f"oversight.{schema}"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def sequence_next(*, schema: str) -> int:
    """The next event number of tenant ``schema`` (1, 2, …; shared by every process)."""
    return int(_redis().incr(f"vigil:live:seq:{schema}"))


def sequence_current(*, schema: str) -> int:
    """The number of the latest event sent for ``schema`` (0 before the first)."""
    value = _redis().get(f"vigil:live:seq:{schema}")
    return int(value) if value is not None else 0


def ticket_issue(*, schema: str, user_id: int) -> str:
    """A single-use ticket, valid for ``TICKET_TTL_SECONDS``, that opens one socket on tenant
    ``schema`` as user ``user_id``."""
    ticket = secrets.token_urlsafe(24)
    _redis().set(f"vigil:live:ticket:{schema}:{ticket}", user_id, ex=TICKET_TTL_SECONDS)
    return ticket


def ticket_redeem(*, schema: str, ticket: str) -> int | None:
    """The user id a ticket was issued to on ``schema``, once: the ticket is gone after this
    call. None for an unknown, expired, used or foreign ticket."""
    if not ticket or len(ticket) > 64:
        return None
    value = _redis().getdel(f"vigil:live:ticket:{schema}:{ticket}")
    return int(value) if value is not None else None
