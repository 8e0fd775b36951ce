"""The signature of every request Vigil sends to a tenant's endpoint, and its check on the
receiving side (standard library only, so a receiver can copy it).

- ``Idempotency-Key: <the effect's key>``: the same on every attempt of a delivery, and the same
  as the body's ``idempotency_key``, which the signature covers. The receiver applies a key once,
  which turns at-least-once delivery into an exactly-once effect, and refuses a request whose
  header differs from its body's key: the header alone is not signed, so a captured request
  replayed under another key must not pass as a new effect.
- ``Vigil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(signing secret, "<t>.<raw body>")>``:
  the receiver recomputes the HMAC over the raw body it read, compares in constant time, and
  refuses a ``t`` too far from its clock (a replayed request). Several ``v1=`` may be accepted
  while a secret is being changed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Vigil-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the Vigil-Signature header for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signature_verify(
    secret: str, header: str, body: bytes, *, tolerance: float = 300, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds: what a
    receiver does (the demo's receiver and the tests use it)."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
