"""Lockout after repeated failed sign-ins, on the admin login and the API's token endpoint.

Every failed sign-in (Django's ``user_login_failed``, which both send) is counted twice in
Redis, per account (username, case-blind) and per client address, each in a window of
VIGIL_LOCKOUT_WINDOW_SECONDS from its first failure. When an account reaches
VIGIL_LOCKOUT_FAILURES, or an address VIGIL_LOCKOUT_IP_FAILURES, it is locked for
VIGIL_LOCKOUT_SECONDS: ``LockoutBackend``, first of the authentication backends, refuses
every sign-in of a locked account or from a locked address, the right password included.
The lock ends by itself, or earlier when an admin lifts it (``lockout_lift``, the
``unlock_account`` command), which is audited. The attempts themselves are audited by
governance.receivers (the first failure and the burst of each source).

Why not django-axes: it keeps its attempts and lockouts in tables of the public schema
(or whichever schema the request happens to use), keyed by username and address only, so
alice of tenant A and alice of tenant B would share one lock, and each failure costs a
database write. Here the counters are keyed by database, schema and a hash of the source,
cost one Redis round trip, and expire by themselves. Redis down: nothing is locked (the
failures are still audited one by one).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.dispatch import receiver
from django.http import HttpRequest

from config.connection import connection
from governance.actors import Actor
from governance.services import audit_record

logger = logging.getLogger(__name__)

KEY_PREFIX = "vigil:lockout"
ACCOUNT, ADDRESS = "account", "ip"
# Where the backend leaves the lock it refused a sign-in for, for the view to explain it.
REQUEST_ATTRIBUTE = "vigil_lockout"


@dataclass(frozen=True)
class Lock:
    kind: str  # ACCOUNT or ADDRESS
    retry_after: int  # seconds until it ends by itself

    @property
    def detail(self) -> str:
        what = "this account" if self.kind == ACCOUNT else "this address"
        minutes = max(1, round(self.retry_after / 60))
        return f"Too many failed sign-ins for {what}: try again in {minutes} minute{'s' if minutes > 1 else ''}."


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)


def _key(kind: str, value: str) -> str:
    # Hashed: no username or address is stored in Redis. The database name keeps deployments
    # (and test sessions) sharing a Redis apart; the schema keeps tenants apart.
    source = hashlib.sha256(value.lower().encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:{connection.settings_dict['NAME']}:{connection.schema_name}:{kind}:{source}"


def _sources(*, ip: str, username: str) -> list[tuple[str, str, int]]:
    found = []
    if username:
        found.append((ACCOUNT, _key(ACCOUNT, username), settings.VIGIL_LOCKOUT_FAILURES))
    if ip:
        found.append((ADDRESS, _key(ADDRESS, ip), settings.VIGIL_LOCKOUT_IP_FAILURES))
    return found


def lock_get(*, ip: str, username: str) -> Lock | None:
    """The lock on this account or address, if any (the account's first). One round trip."""
    sources = _sources(ip=ip, username=username)
    if not sources:
        return None
    try:
        values = _redis().mget([f"{key}:locked" for _, key, _ in sources])
    except (redis.RedisError, OSError):
        logger.warning("auth.lockout_unchecked", extra={"schema": connection.schema_name})
        return None
    now = time.time()
    for (kind, _, _), until in zip(sources, values, strict=True):
        if until is not None and float(until) > now:
            return Lock(kind=kind, retry_after=max(1, int(float(until) - now + 0.999)))
    return None


def failure_record(*, ip: str, username: str) -> Lock | None:
    """Count one failed sign-in of this account and address; the lock it starts, if any."""
    sources = _sources(ip=ip, username=username)
    if not sources:
        return None
    window, duration = settings.VIGIL_LOCKOUT_WINDOW_SECONDS, settings.VIGIL_LOCKOUT_SECONDS
    try:
        client = _redis()
        pipe = client.pipeline(transaction=False)
        for _, key, _ in sources:
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        counts = pipe.execute()[::2]
        started = None
        for (kind, key, limit), count in zip(sources, counts, strict=True):
            if int(count) >= limit and client.set(f"{key}:locked", time.time() + duration, ex=duration, nx=True):
                logger.warning(
                    "auth.locked_out", extra={"schema": connection.schema_name, "kind": kind, "count": int(count)}
                )
                started = started or Lock(kind=kind, retry_after=duration)
    except (redis.RedisError, OSError):
        logger.warning("auth.lockout_uncounted", extra={"schema": connection.schema_name})
        return None
    return started


def lockout_lift(*, actor: Actor, username: str = "", ip: str = "") -> bool:
    """Unlock an account or an address of the current schema before its time and forget its
    failures. Audited as ``auth.unlocked``; True when there was a lock to lift."""
    if not (username or ip):
        raise ValueError("name an account or an address to unlock")
    keys = [key for _, key, _ in _sources(ip=ip, username=username)]
    client = _redis()
    was_locked = bool(client.exists(*[f"{key}:locked" for key in keys]))
    client.delete(*keys, *[f"{key}:locked" for key in keys])
    audit_record(
        actor=actor,
        verb="auth.unlocked",
        target_type="user",
        target_id="",
        data={"username": username, "ip": ip, "was_locked": was_locked},
    )
    return was_locked


def lockout_forget() -> int:
    """Drop every counter and lock of this database (all schemas); returns how many."""
    client = _redis()
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}:{connection.settings_dict['NAME']}:*", count=500))
    return int(client.delete(*keys)) if keys else 0


def client_ip(request: Any) -> str:
    return str(getattr(request, "META", {}).get("REMOTE_ADDR", "")) if request is not None else ""


class LockoutBackend:
    """First of AUTHENTICATION_BACKENDS: refuses (PermissionDenied, which ends the sign-in
    as failed) a locked account or address; otherwise lets the next backend decide. It has
    no ``get_user``, so that Django never records it as the backend of a session
    (``force_login`` takes the first backend that has one)."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None, **kwargs: Any) -> None:
        lock = lock_get(ip=client_ip(request), username=str(username or ""))
        if lock is not None:
            if request is not None:
                setattr(request, REQUEST_ATTRIBUTE, lock)
            raise PermissionDenied(lock.detail)
        return None


class LockoutAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, saying so when a lockout refused the sign-in."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            lock = getattr(self.request, REQUEST_ATTRIBUTE, None)
            if lock is not None:
                raise ValidationError(lock.detail, code="locked_out") from None
            raise


@receiver(user_login_failed, dispatch_uid="governance.lockout_count")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if request is not None and hasattr(request, REQUEST_ATTRIBUTE):
        return  # refused by a lock: not a new failure, or the lock would renew itself
    lock = failure_record(ip=client_ip(request), username=str(credentials.get("username", ""))[:150])
    if lock is not None and request is not None:
        setattr(request, REQUEST_ATTRIBUTE, lock)
