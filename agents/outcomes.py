"""What one message did to its task: the answer of ``engine.advance``. The Celery task returns
the plain value, which is what the worker logs (``succeeded in 0.01s: 'stepped'``)."""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    STALE = "stale"  # the message no longer holds the lease, or the task cannot run: dropped
    HELD = "held"  # tenant suspended or agent paused: stopped at the step boundary, no deadline
    STEPPED = "stepped"  # a step was written and the next message sent
    WAITING = "awaiting_approval"  # a step needs a human's decision; nothing is sent until then
    FINISHED = "finished"  # completed (and verified) or escalated
    RETRY = "retry"  # the step failed: retried with backoff, or escalated once retries are spent
    MISSING = "missing"  # no such task in this schema
