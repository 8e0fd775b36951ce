"""Hooks into Django's own signals (the only signals we use): logins for the audit trail, and
post_migrate to keep role groups in step with the models of each migrated schema.

Failed logins are counted per source (schema, client address and username) in Redis, in a
window that starts at the source's first failure. The chain records the first failure of each
window and one ``auth.login_failed_burst`` event, with the count, when the count reaches
LOGIN_BURST_THRESHOLD; later failures of that window are only counted. So a password-guessing
run costs the chain at most two events per source and window, and the count stays readable
(``login_failures_count``) for a lockout to build on.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from config.connection import connection
from governance.actors import Actor
from governance.roles import roles_sync
from governance.services import audit_record

logger = logging.getLogger(__name__)


def _client_ip(request: Any) -> str:
    return getattr(request, "META", {}).get("REMOTE_ADDR", "") if request is not None else ""


@receiver(user_logged_in, dispatch_uid="governance.login_succeeded")
def _login_succeeded(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(
        actor=Actor.for_user(user),
        verb="auth.login_succeeded",
        target_type="user",
        target_id=user.pk,
        data={"ip": _client_ip(request)},
    )


LOGIN_FAILURE_WINDOW_SECONDS = 900
LOGIN_BURST_THRESHOLD = 5
_COUNTER_PREFIX = "vigil:login_failed"


@cache
def _counters() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)


def _counter_key(*, ip: str, username: str) -> str:
    # The database name keeps deployments (and test sessions) that share a Redis apart; the
    # source is hashed so that no username is stored in Redis.
    source = hashlib.sha256(f"{ip}\0{username.lower()}".encode()).hexdigest()[:32]
    return f"{_COUNTER_PREFIX}:{connection.settings_dict['NAME']}:{connection.schema_name}:{source}"


def login_failures_count(*, ip: str, username: str) -> int:
    """Failed logins of this source (in the current schema) in its current window."""
    value = _counters().get(_counter_key(ip=ip, username=username))
    return int(value) if value is not None else 0


def login_failures_forget() -> int:
    """Drop every failure counter of this database (all schemas); returns how many."""
    client = _counters()
    keys = list(client.scan_iter(match=f"{_COUNTER_PREFIX}:{connection.settings_dict['NAME']}:*", count=500))
    return int(client.delete(*keys)) if keys else 0


def _failure_counted(*, ip: str, username: str) -> int | None:
    """This source's count including this failure; None when Redis cannot be reached."""
    key = _counter_key(ip=ip, username=username)
    try:
        pipe = _counters().pipeline()
        pipe.incr(key)
        pipe.expire(key, LOGIN_FAILURE_WINDOW_SECONDS, nx=True)
        count, _ = pipe.execute()
    except (redis.RedisError, OSError):
        logger.warning("auth.login_failure_uncounted", extra={"schema": connection.schema_name})
        return None
    return int(count)


@receiver(user_login_failed, dispatch_uid="governance.login_failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Django already masks the password in credentials; keep only the username.
    username = str(credentials.get("username", ""))[:150]
    ip = _client_ip(request)
    count = _failure_counted(ip=ip, username=username)
    actor = Actor(type="user", id="", label=username or "unknown")
    # Without the counter every failure is audited: a Redis outage must not hide attempts.
    if count is None or count == 1:
        audit_record(
            actor=actor,
            verb="auth.login_failed",
            target_type="user",
            target_id="",
            data={"username": username, "ip": ip},
        )
    elif count == LOGIN_BURST_THRESHOLD:
        audit_record(
            actor=actor,
            verb="auth.login_failed_burst",
            target_type="user",
            target_id="",
            data={"username": username, "ip": ip, "count": count, "window_seconds": LOGIN_FAILURE_WINDOW_SECONDS},
        )


@receiver(post_migrate, dispatch_uid="governance.roles_sync")
def _sync_roles_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    # post_migrate fires once per app; syncing once, on our own app, is enough because
    # roles_sync creates every app's permissions itself first.
    if sender.name != "governance":
        return
    roles_sync(using=using)
    logger.debug("roles.synced", extra={"schema": connection.schema_name})
