"""LLM connections: the endpoints operators define in the public schema, and the one answer to
"may this tenant's agent use this connection and model".

A tenant's agent names a connection and one of its models; the URL, the environment variable
that holds the key and the timeout are the operator's, so nothing a tenant writes decides where
the workers send a request or which of their secrets goes with it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any, TypedDict

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from config.connection import connection as db_connection
from config.errors import VigilError
from config.secrets import secret_decrypt, secret_encrypt
from governance.actors import Actor
from governance.services import audit_record
from tenants.models import LLMConnection, Tenant
from tenants.selectors import tenant_list

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
KEY_ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$")
# Variables the application reads for its own configuration: a connection naming one of them
# would send the database password or the secret key to the endpoint as a bearer token.
RESERVED_KEY_ENV_PREFIXES = ("VIGIL_", "DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "PG")
MAX_MODELS = 50
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 0.1, 600.0
_URL = URLValidator(schemes=["http", "https"])


class LLMConnectionInvalid(VigilError):
    code = "llm_connection_invalid"
    status = 400


class LLMConnectionNotFound(VigilError):
    code = "llm_connection_not_found"
    status = 404


class LLMConnectionUnavailable(VigilError):
    """The connection an agent names cannot serve this tenant (missing, not granted, disabled)."""

    code = "llm_connection_unavailable"
    status = 400


class ConnectionFields(TypedDict):
    base_url: str
    api_key_env: str
    allowed_models: list[str]
    timeout_seconds: float


# ---------------------------------------------------------------------------- selectors
def llm_connection_list() -> list[LLMConnection]:
    return list(LLMConnection.objects.prefetch_related("tenants").order_by("name"))


def llm_connection_get(*, name: str) -> LLMConnection:
    try:
        return LLMConnection.objects.get(name=name)
    except LLMConnection.DoesNotExist:
        raise LLMConnectionNotFound(f"no LLM connection named {name!r}", name=name) from None


def llm_connection_usable(*, name: str, schema_name: str) -> LLMConnection:
    """The connection ``name`` if the tenant of ``schema_name`` may use it now (one query; the
    table is in the public schema, which every tenant's search path includes). Raises
    LLMConnectionUnavailable: a missing connection and one granted to other tenants get the same
    message, so a tenant cannot probe for the names of other tenants' connections."""
    granted = LLMConnection.tenants.through.objects.filter(
        llmconnection_id=OuterRef("pk"), tenant__schema_name=schema_name
    )
    found = LLMConnection.objects.filter(name=name).annotate(granted=Exists(granted)).first()
    if found is None or not (found.available_to_all or found.granted):
        raise LLMConnectionUnavailable(f"no LLM connection {name!r} is available to this tenant")
    if not found.enabled:
        raise LLMConnectionUnavailable(f"the LLM connection {name!r} is disabled")
    return found


def llm_connection_api_key(conn: LLMConnection) -> str:
    """The key a call through ``conn`` sends, read at call time: the operator's stored key
    (decrypted now, config.secrets) or else the worker's variable ``api_key_env``; "" when
    neither is there. Never logged or kept."""
    if conn.api_key_encrypted:
        return secret_decrypt(conn.api_key_encrypted)
    return os.environ.get(conn.api_key_env, "")


# ---------------------------------------------------------------------------- validation
def llm_connection_clean(
    *, base_url: Any, api_key_env: Any, allowed_models: Any, timeout_seconds: Any
) -> ConnectionFields:
    """Check an operator's values; returns them normalized. Raises LLMConnectionInvalid with
    an error per field."""
    errors: dict[str, str] = {}
    url = base_url.strip() if isinstance(base_url, str) else ""
    try:
        _URL(url)
    except ValidationError:
        errors["base_url"] = "must be an http(s) URL"
    else:
        if "@" in url.split("/")[2]:
            errors["base_url"] = "must not carry credentials: the key comes from api_key_env"
        elif len(url) > 500:
            errors["base_url"] = "at most 500 characters"
    env = api_key_env.strip() if isinstance(api_key_env, str) else ""
    if not KEY_ENV_RE.match(env):
        errors["api_key_env"] = "must be an environment variable name: A-Z, 0-9 and _, not starting with a digit"
    elif env.startswith(RESERVED_KEY_ENV_PREFIXES):
        errors["api_key_env"] = f"{env} belongs to the application's own configuration, not to an LLM key"
    models = allowed_models if isinstance(allowed_models, (list, tuple)) else None
    if not models:
        errors["allowed_models"] = "name at least one model"
    elif len(models) > MAX_MODELS:
        errors["allowed_models"] = f"at most {MAX_MODELS} models"
    else:
        bad = [str(m) for m in models if not isinstance(m, str) or not MODEL_RE.match(m)]
        if bad:
            errors["allowed_models"] = f"not model names: {', '.join(bad)}"
        elif len(set(models)) != len(models):
            errors["allowed_models"] = "names a model twice"
    numeric = isinstance(timeout_seconds, (int, float)) and not isinstance(timeout_seconds, bool)
    timeout = float(timeout_seconds) if numeric else math.nan
    if not MIN_TIMEOUT_SECONDS <= timeout <= MAX_TIMEOUT_SECONDS:  # NaN compares false
        errors["timeout_seconds"] = (
            f"must be a number of seconds from {MIN_TIMEOUT_SECONDS:g} to {MAX_TIMEOUT_SECONDS:g}"
        )
    if errors:
        raise LLMConnectionInvalid(
            "invalid LLM connection: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors
        )
    return ConnectionFields(base_url=url, api_key_env=env, allowed_models=list(models or []), timeout_seconds=timeout)


def _tenants(schema_names: Sequence[str]) -> list[Tenant]:
    found = {t.schema_name: t for t in tenant_list().filter(schema_name__in=list(schema_names))}
    unknown = sorted(set(schema_names) - set(found))
    if unknown:
        raise LLMConnectionInvalid(
            f"no tenant with schema {', '.join(map(repr, unknown))}",
            fields={"tenants": f"unknown: {', '.join(unknown)}"},
        )
    return [found[s] for s in dict.fromkeys(schema_names)]


def _schemas(conn: LLMConnection) -> list[str]:
    return sorted(conn.tenants.values_list("schema_name", flat=True))


def _locked(name: str) -> LLMConnection:
    db_connection.set_schema_to_public()
    try:
        return LLMConnection.objects.select_for_update().get(name=name)
    except LLMConnection.DoesNotExist:
        raise LLMConnectionNotFound(f"no LLM connection named {name!r}", name=name) from None


# ---------------------------------------------------------------------------- services
# Not durable: the operators' admin runs its change form in a transaction of its own.
@transaction.atomic
def llm_connection_create(
    *,
    name: str,
    base_url: str,
    api_key_env: str,
    allowed_models: Sequence[str],
    timeout_seconds: float = 20.0,
    available_to_all: bool = False,
    enabled: bool = True,
    tenants: Sequence[str] = (),
    actor: Actor,
) -> LLMConnection:
    """Define a connection. ``tenants`` are schema names granted the connection (ignored while
    ``available_to_all``). Raises LLMConnectionInvalid naming each bad field, or a taken name."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise LLMConnectionInvalid(
            f"invalid connection name {name!r}: lowercase letters, digits and dashes, at most 50",
            fields={"name": "lowercase letters, digits and dashes, at most 50"},
        )
    fields = llm_connection_clean(
        base_url=base_url, api_key_env=api_key_env, allowed_models=allowed_models, timeout_seconds=timeout_seconds
    )
    db_connection.set_schema_to_public()
    granted = _tenants(tenants)
    taken = LLMConnectionInvalid(f"an LLM connection named {name!r} exists already", fields={"name": "already in use"})
    if LLMConnection.objects.filter(name=name).exists():
        raise taken
    try:
        with transaction.atomic():
            conn = LLMConnection.objects.create(
                name=name, available_to_all=bool(available_to_all), enabled=bool(enabled), **fields
            )
    except IntegrityError:  # created concurrently since the check above
        raise taken from None
    conn.tenants.set(granted)
    audit_record(
        actor=actor,
        verb="llm_connection.created",
        target_type="llm_connection",
        target_id=name,
        data={
            **fields,
            "available_to_all": conn.available_to_all,
            "enabled": conn.enabled,
            "tenants": sorted(t.schema_name for t in granted),
        },
    )
    return conn


@transaction.atomic
def llm_connection_update(
    *,
    name: str,
    actor: Actor,
    base_url: str | None = None,
    api_key_env: str | None = None,
    allowed_models: Sequence[str] | None = None,
    timeout_seconds: float | None = None,
    available_to_all: bool | None = None,
    enabled: bool | None = None,
    tenants: Sequence[str] | None = None,
) -> LLMConnection:
    """Change the given fields of a connection (``tenants`` replaces the granted set). Agents
    pick up the change at their next step. Audits what changed; raises LLMConnectionNotFound
    or LLMConnectionInvalid."""
    conn = _locked(name)
    return _update(
        conn,
        actor=actor,
        base_url=base_url,
        api_key_env=api_key_env,
        allowed_models=allowed_models,
        timeout_seconds=timeout_seconds,
        available_to_all=available_to_all,
        enabled=enabled,
        tenants=tenants,
    )


@transaction.atomic(durable=True)
def llm_connection_grant(*, name: str, schema_names: Sequence[str], actor: Actor) -> LLMConnection:
    """Let the tenants of ``schema_names`` use the connection, in addition to those it has."""
    conn = _locked(name)
    return _update(conn, actor=actor, tenants=[*_schemas(conn), *schema_names])


@transaction.atomic(durable=True)
def llm_connection_revoke(*, name: str, schema_names: Sequence[str], actor: Actor) -> LLMConnection:
    """Take the connection away from the tenants of ``schema_names``: their agents' next step
    through it fails. Schema names the connection is not granted to are an error."""
    conn = _locked(name)
    current = _schemas(conn)
    missing = sorted(set(schema_names) - set(current))
    if missing:
        raise LLMConnectionInvalid(
            f"{name!r} is not granted to {', '.join(map(repr, missing))}",
            fields={"tenants": f"not granted: {', '.join(missing)}"},
        )
    return _update(conn, actor=actor, tenants=[s for s in current if s not in set(schema_names)])


@transaction.atomic
def llm_connection_delete(*, name: str, actor: Actor) -> None:
    """Remove a connection. Agents that name it fail their next step until they name another."""
    conn = _locked(name)
    data = {"base_url": conn.base_url, "api_key_env": conn.api_key_env, "tenants": _schemas(conn)}
    conn.delete()
    audit_record(actor=actor, verb="llm_connection.deleted", target_type="llm_connection", target_id=name, data=data)


@transaction.atomic
def llm_connection_key_set(*, name: str, api_key: str | None, actor: Actor) -> LLMConnection:
    """Store the connection's key, encrypted (it then wins over ``api_key_env``), or remove it
    (None: back to the variable). Audited as set or removed, never with the key."""
    conn = _locked(name)
    if api_key is not None:
        key = api_key.strip()
        if not key or len(key) > 4096 or any(c in key for c in "\r\n\0"):
            raise LLMConnectionInvalid(
                "invalid API key: 1 to 4096 characters, no line breaks", fields={"api_key": "1 to 4096 characters"}
            )
        conn.api_key_encrypted = secret_encrypt(key)
    else:
        conn.api_key_encrypted = ""
    conn.save(update_fields=["api_key_encrypted", "updated_at"])
    audit_record(
        actor=actor,
        verb="llm_connection.key_set" if api_key is not None else "llm_connection.key_removed",
        target_type="llm_connection",
        target_id=name,
        data={"api_key_env": conn.api_key_env},
    )
    return conn


def _update(
    conn: LLMConnection,
    *,
    actor: Actor,
    base_url: str | None = None,
    api_key_env: str | None = None,
    allowed_models: Sequence[str] | None = None,
    timeout_seconds: float | None = None,
    available_to_all: bool | None = None,
    enabled: bool | None = None,
    tenants: Sequence[str] | None = None,
) -> LLMConnection:
    fields = llm_connection_clean(
        base_url=conn.base_url if base_url is None else base_url,
        api_key_env=conn.api_key_env if api_key_env is None else api_key_env,
        allowed_models=list(conn.allowed_models if allowed_models is None else allowed_models),
        timeout_seconds=conn.timeout_seconds if timeout_seconds is None else timeout_seconds,
    )
    wanted: dict[str, Any] = {**fields}
    if available_to_all is not None:
        wanted["available_to_all"] = bool(available_to_all)
    if enabled is not None:
        wanted["enabled"] = bool(enabled)
    changes: dict[str, Any] = {
        key: {"from": getattr(conn, key), "to": value} for key, value in wanted.items() if getattr(conn, key) != value
    }
    if tenants is not None:
        granted = _tenants(tenants)
        before, after = _schemas(conn), sorted(t.schema_name for t in granted)
        if before != after:
            conn.tenants.set(granted)
            changes["tenants"] = {"from": before, "to": after}
    if not changes:
        return conn
    for key, change in changes.items():
        if key != "tenants":
            setattr(conn, key, change["to"])
    conn.save()
    audit_record(
        actor=actor, verb="llm_connection.updated", target_type="llm_connection", target_id=conn.name, data=changes
    )
    return conn
