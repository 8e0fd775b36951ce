"""API tokens: issued, listed, revoked and checked here, and only here.

Why an own model rather than django-rest-knox: knox also stores digests only, but its tokens
carry no name and no last-used time, it takes one header keyword (we keep ``Token`` for DRF
clients and accept ``Bearer``), and its issue and revoke go through its own views, which would
bypass the audit trail. ``ApiToken`` is a small table of the tenant's schema, like every other
tenant row, so a token only exists on its own tenant's host: on another host the lookup runs in
another schema and finds nothing (401), with no tenant column to forget to filter on.

A token reads ``vgl_<prefix>_<secret>``: the prefix (8 hex characters, shown in lists) finds
the row, the secret (256 random bits) is what makes it unguessable, and only the SHA-256 of
the whole token is stored. A plain SHA-256 is enough because the input is random, not a
password: there is nothing to brute-force offline. The secret is shown once, at issue.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from config.connection import connection
from config.errors import VigilError
from governance import access
from governance.actors import Actor
from governance.models import ApiToken
from governance.services import audit_record

TOKEN_PREFIX = "vgl_"  # noqa: S105  (the visible start of every token)
PREFIX_LENGTH = 8
# The last-used time is written at most this often per token: one UPDATE a minute, not one a request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# DRF's former tokens: 40 hex characters, found by their first eight (migration 0005).
_LEGACY_LENGTH = 40


class TokenInvalid(VigilError):
    code = "invalid_token"
    status = 400


class TokenNotFound(VigilError):
    code = "not_found"
    status = 404


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the whole token; never stored, shown once


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _lookup_prefix(raw: str) -> str | None:
    if raw.startswith(TOKEN_PREFIX):
        prefix, sep, secret = raw[len(TOKEN_PREFIX) :].partition("_")
        return prefix if sep and len(prefix) == PREFIX_LENGTH and secret else None
    if len(raw) == _LEGACY_LENGTH and raw.isascii() and raw.isalnum():
        return raw[:PREFIX_LENGTH]
    return None


def _expiry(days: int | None) -> datetime:
    most = settings.VIGIL_API_TOKEN_MAX_DAYS
    days = settings.VIGIL_API_TOKEN_DAYS if days is None else days
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= most:
        raise TokenInvalid(f"expires_in_days must be a whole number from 1 to {most}", field="expires_in_days")
    return timezone.now() + timedelta(days=days)


@transaction.atomic
def token_issue(*, user: Any, name: str, expires_in_days: int | None = None, actor: Any = None) -> IssuedToken:
    """A new token for ``user`` named ``name``, valid ``expires_in_days`` (default
    VIGIL_API_TOKEN_DAYS). Audited as ``auth.token_issued`` (by ``actor``, the user by default)."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise TokenInvalid("a token needs a name of 1 to 100 characters", field="name")
    expires_at = _expiry(expires_in_days)
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        digest=token_digest(secret),
        created_at=timezone.now(),
        expires_at=expires_at,
    )
    audit_record(
        actor=Actor.for_user(actor or user),
        verb="auth.token_issued",
        target_type="api_token",
        target_id=token.pk,
        data={
            "username": user.get_username(),
            "name": name,
            "prefix": prefix,
            "expires_at": expires_at.isoformat(),
        },
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def token_revoke(*, token_id: int, actor: Any, any_user: bool = False) -> ApiToken:
    """Revoke one of ``actor``'s tokens (any user's of this tenant with ``any_user``, for
    admins). Audited as ``auth.token_revoked``; revoking a revoked token changes nothing."""
    tokens = ApiToken.objects.select_for_update(of=("self",)).select_related("user")
    if not any_user:
        tokens = tokens.filter(user=actor)
    token = tokens.filter(pk=token_id).first()
    if token is None:
        raise TokenNotFound(f"no API token {token_id} of yours", token=token_id)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=Actor.for_user(actor),
            verb="auth.token_revoked",
            target_type="api_token",
            target_id=token.pk,
            data={"username": token.user.get_username(), "name": token.name, "prefix": token.prefix},
        )
    return token


def tokens_of(*, user: Any) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def _columns(model: type[Model], alias: str) -> tuple[list[str], str]:
    names = [f.attname for f in model._meta.concrete_fields]
    return names, ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


_TOKEN_FIELDS, _TOKEN_COLUMNS = _columns(ApiToken, "t")
_USER_FIELDS, _USER_COLUMNS = _columns(User, "u")
_DIGEST_AT = _TOKEN_FIELDS.index("digest")
_USER_AT, _ACCESS_AT = len(_TOKEN_FIELDS), len(_TOKEN_FIELDS) + len(_USER_FIELDS)
_ACCESS_COLUMNS, _ACCESS_PARAMS = access.access_sql('u."id"')
# The one statement of token_authenticate: the live tokens of a prefix, each with its user and,
# on a tenant's host, the user's roles and agent grants (the public schema has no agent grants:
# there the roles are read when asked for). Written out: building it with the ORM on every
# request took ten times longer than the database takes to answer it.
_LOOKUP_FROM = (
    f' FROM "{ApiToken._meta.db_table}" t JOIN "{User._meta.db_table}" u ON u."id" = t."user_id"'
    ' WHERE t."prefix" = %s AND t."revoked_at" IS NULL AND t."expires_at" > %s'
)
_LOOKUP_SQL = f"SELECT {_TOKEN_COLUMNS}, {_USER_COLUMNS}, {_ACCESS_COLUMNS}{_LOOKUP_FROM}"
_PUBLIC_LOOKUP_SQL = f"SELECT {_TOKEN_COLUMNS}, {_USER_COLUMNS}{_LOOKUP_FROM}"


def token_authenticate(raw: str) -> ApiToken | None:
    """The live token ``raw`` is, with its user, or None (unknown, revoked, expired or of an
    inactive user). One query, which also reads the user's roles and agent grants
    (governance.access); a second, at most once a minute, records the last use."""
    prefix = _lookup_prefix(raw)
    if prefix is None:
        return None
    digest = token_digest(raw)
    now = timezone.now()
    on_tenant = connection.schema_name != get_public_schema_name()
    with connection.cursor() as cursor:
        if on_tenant:
            cursor.execute(_LOOKUP_SQL, [*_ACCESS_PARAMS, prefix, now])
        else:
            cursor.execute(_PUBLIC_LOOKUP_SQL, [prefix, now])
        row = next((r for r in cursor.fetchall() if hmac.compare_digest(r[_DIGEST_AT], digest)), None)
    if row is None:
        return None
    token = ApiToken.from_db(connection.alias, _TOKEN_FIELDS, row[:_USER_AT])
    token.user = User.from_db(connection.alias, _USER_FIELDS, row[_USER_AT:_ACCESS_AT])
    if not token.user.is_active:
        return None
    if on_tenant:
        roles, grants = row[_ACCESS_AT:]
        access.access_preload(token.user, roles=roles, grants=grants)
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
