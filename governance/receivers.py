"""Hooks into Django's own signals (the only signals we use): logins for the audit trail, and
post_migrate to keep role groups in step with the models of each migrated schema."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import connection
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from governance.actors import Actor
from governance.roles import roles_sync
from governance.services import audit_record

logger = logging.getLogger(__name__)


def _client_ip(request: Any) -> str:
    return getattr(request, "META", {}).get("REMOTE_ADDR", "") if request is not None else ""


@receiver(user_logged_in, dispatch_uid="governance.login_succeeded")
def _login_succeeded(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(actor=Actor.for_user(user), verb="auth.login_succeeded", target_type="user",
                 target_id=user.pk, data={"ip": _client_ip(request)})


@receiver(user_login_failed, dispatch_uid="governance.login_failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Django already masks the password in credentials; keep only the username.
    username = str(credentials.get("username", ""))[:150]
    audit_record(actor=Actor(type="user", id="", label=username or "unknown"), verb="auth.login_failed",
                 target_type="user", target_id="", data={"username": username, "ip": _client_ip(request)})


@receiver(post_migrate, dispatch_uid="governance.roles_sync")
def _sync_roles_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    # post_migrate fires once per app; syncing once, on our own app, is enough because
    # roles_sync creates every app's permissions itself first.
    if sender.name != "governance":
        return
    roles_sync(using=using)
    logger.debug("roles.synced", extra={"schema": connection.schema_name})
