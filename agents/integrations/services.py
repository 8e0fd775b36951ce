"""Credentials and endpoints: what a tenant admin configures, checked and audited here (the API
and the admin both call these). Secrets are encrypted before they reach a row and appear in no
audit event, error or return value: an audit event says a secret was set, never what it is."""

from __future__ import annotations

import math
import re
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.integrations.egress import EgressRefused, egress_check
from agents.integrations.secrets import secret_encrypt
from agents.models import Credential, CredentialKind, Endpoint
from config.errors import NameTaken, VigilError
from governance.actors import Actor
from governance.services import audit_record

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,100}$")
# The effect kinds the shipped tools write, and the kinds of the tools that answer from an endpoint.
ENDPOINT_KINDS = ("reply", "refund", "restart", "lookup_order")
# Headers the relay sets itself: a credential may not replace them.
RESERVED_HEADERS = frozenset(
    {"host", "content-type", "content-length", "user-agent", "idempotency-key", "vigil-signature",
     "vigil-delivery-attempt", "transfer-encoding", "connection"}
)  # fmt: skip
MAX_SECRET = 4096
BASIC_FORMAT = "basic credentials are 'user:password'"
MIN_SIGNING_SECRET = 16
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 60.0


class IntegrationInvalid(VigilError):
    code = "integration_invalid"
    status = 400


class IntegrationNotFound(VigilError):
    code = "not_found"
    status = 404


def _invalid(errors: dict[str, str]) -> IntegrationInvalid:
    return IntegrationInvalid("; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors)


def _check_name(name: Any, errors: dict[str, str]) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        errors["name"] = "lowercase letters, digits and dashes, at most 50"


def _check_secret(value: Any, field: str, errors: dict[str, str], *, minimum: int = 1) -> None:
    if not isinstance(value, str) or len(value) < minimum:
        errors[field] = f"at least {minimum} characters" if minimum > 1 else "must not be empty"
    elif len(value) > MAX_SECRET:
        errors[field] = f"at most {MAX_SECRET} characters"
    elif any(c in value for c in "\r\n\0"):
        errors[field] = "must not contain line breaks or NUL"


# ---------------------------------------------------------------------------- credentials
def credential_get(*, name: str) -> Credential:
    found = Credential.objects.filter(name=name).first()
    if found is None:
        raise IntegrationNotFound(f"no credential named {name!r}", name=name)
    return found


def credential_check(*, name: str, kind: str, header_name: str, secret: str, new: bool = True) -> str:
    """Check a credential's fields (``new``: also its name); the header name to store. Raises
    IntegrationInvalid naming each bad field, never the secret's value."""
    errors: dict[str, str] = {}
    if new:
        _check_name(name, errors)
    if kind not in CredentialKind.values:
        errors["kind"] = f"one of {', '.join(CredentialKind.values)}"
    header = header_name.strip() if isinstance(header_name, str) else ""
    if kind == CredentialKind.HEADER:
        if not HEADER_RE.match(header):
            errors["header_name"] = "a header name: letters, digits and dashes"
        elif header.lower() in RESERVED_HEADERS:
            errors["header_name"] = f"{header} is set by the relay itself"
    elif header:
        errors["header_name"] = "only for kind 'header'"
    _check_secret(secret, "secret", errors)
    if not errors and kind == CredentialKind.BASIC and ":" not in secret:
        errors["secret"] = BASIC_FORMAT
    if errors:
        raise _invalid(errors)
    return header


@transaction.atomic
def credential_create(*, name: str, kind: str, secret: str, header_name: str = "", actor: Actor) -> Credential:
    """Store a secret (encrypted) for endpoints to use. ``kind`` is bearer (the token), basic
    ("user:password") or header (``header_name`` carries the value)."""
    header = credential_check(name=name, kind=kind, header_name=header_name, secret=secret)
    if Credential.objects.filter(name=name).exists():
        raise NameTaken(f"a credential named {name!r} exists already")
    try:
        with transaction.atomic():
            credential = Credential.objects.create(
                name=name, kind=kind, header_name=header, secret=secret_encrypt(secret), created_by=actor.label
            )
    except IntegrityError:
        raise NameTaken(f"a credential named {name!r} exists already") from None
    audit_record(
        actor=actor,
        verb="credential.created",
        target_type="credential",
        target_id=name,
        data={"kind": kind, "header_name": header},
    )
    return credential


@transaction.atomic
def credential_rotate(*, name: str, secret: str, actor: Actor) -> Credential:
    """Replace a credential's secret; endpoints use the new one from their next call."""
    credential = Credential.objects.select_for_update().filter(name=name).first()
    if credential is None:
        raise IntegrationNotFound(f"no credential named {name!r}", name=name)
    credential_check(name=name, kind=credential.kind, header_name=credential.header_name, secret=secret, new=False)
    credential.secret, credential.rotated_at = secret_encrypt(secret), timezone.now()
    credential.save(update_fields=["secret", "rotated_at"])
    audit_record(actor=actor, verb="credential.rotated", target_type="credential", target_id=name, data={})
    return credential


@transaction.atomic
def credential_delete(*, name: str, actor: Actor) -> None:
    credential = Credential.objects.select_for_update().filter(name=name).first()
    if credential is None:
        raise IntegrationNotFound(f"no credential named {name!r}", name=name)
    users = sorted(credential.endpoints.values_list("name", flat=True))
    if users:
        raise IntegrationInvalid(
            f"credential {name!r} is used by endpoint(s) {', '.join(users)}", fields={"name": "in use"}
        )
    credential.delete()
    audit_record(actor=actor, verb="credential.deleted", target_type="credential", target_id=name, data={})


# ---------------------------------------------------------------------------- endpoints
def endpoint_get(*, name: str) -> Endpoint:
    found = Endpoint.objects.select_related("credential").filter(name=name).first()
    if found is None:
        raise IntegrationNotFound(f"no endpoint named {name!r}", name=name)
    return found


def _check_endpoint(
    *, url: Any, kinds: Any, timeout_seconds: Any, credential: Any, errors: dict[str, str]
) -> tuple[str, list[str], float, Credential | None]:
    clean_url = url.strip() if isinstance(url, str) else ""
    if len(clean_url) > 500:
        errors["url"] = "at most 500 characters"
    else:
        try:
            egress_check(clean_url)
        except EgressRefused as exc:
            errors["url"] = exc.detail
    clean_kinds = list(kinds) if isinstance(kinds, (list, tuple)) else []
    unknown = [str(k) for k in clean_kinds if k not in ENDPOINT_KINDS]
    if not clean_kinds:
        errors["kinds"] = f"name at least one of {', '.join(ENDPOINT_KINDS)}"
    elif unknown:
        errors["kinds"] = f"unknown kind(s) {', '.join(unknown)}: one of {', '.join(ENDPOINT_KINDS)}"
    elif len(set(clean_kinds)) != len(clean_kinds):
        errors["kinds"] = "names a kind twice"
    numeric = isinstance(timeout_seconds, (int, float)) and not isinstance(timeout_seconds, bool)
    timeout = float(timeout_seconds) if numeric else math.nan
    if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
        errors["timeout_seconds"] = f"a number of seconds from {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g}"
    found: Credential | None = None
    if credential not in (None, ""):
        found = Credential.objects.filter(name=credential).first() if isinstance(credential, str) else None
        if found is None:
            errors["credential"] = f"no credential named {credential!r}"
    return clean_url, sorted(clean_kinds), timeout, found


def _kinds_taken(kinds: list[str], *, but: int | None) -> dict[str, str]:
    """Kinds of ``kinds`` that another enabled endpoint takes already: each kind goes to one."""
    taken: dict[str, str] = {}
    others = Endpoint.objects.filter(enabled=True, kinds__overlap=kinds)
    for other in others.exclude(pk=but) if but is not None else others:
        for kind in set(other.kinds) & set(kinds):
            taken[kind] = other.name
    return taken


def endpoint_errors(
    *,
    url: Any,
    kinds: Any,
    timeout_seconds: Any,
    credential: Any,
    enabled: bool,
    signing_secret: Any = None,
    but: int | None = None,
) -> dict[str, str]:
    """Every problem with these endpoint fields, by field (empty when they may be saved): what
    the admin's form shows before saving. ``but`` is the endpoint being changed."""
    errors: dict[str, str] = {}
    _, clean_kinds, _, _ = _check_endpoint(
        url=url, kinds=kinds, timeout_seconds=timeout_seconds, credential=credential, errors=errors
    )
    if signing_secret is not None:
        _check_secret(signing_secret, "signing_secret", errors, minimum=MIN_SIGNING_SECRET)
    taken = _kinds_taken(clean_kinds, but=but) if enabled and "kinds" not in errors else {}
    if taken:
        errors["kinds"] = ", ".join(f"{k} goes to {n} already" for k, n in sorted(taken.items()))
    return errors


def _describe(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "kinds": list(endpoint.kinds),
        "credential": endpoint.credential.name if endpoint.credential else None,
        "enabled": endpoint.enabled,
        "timeout_seconds": endpoint.timeout_seconds,
    }


@transaction.atomic
def endpoint_create(
    *,
    name: str,
    url: str,
    kinds: list[str],
    signing_secret: str,
    credential: str | None = None,
    enabled: bool = True,
    timeout_seconds: float = 10.0,
    actor: Actor,
) -> Endpoint:
    """Configure where effects of ``kinds`` go. The URL must pass the operator's egress rules;
    ``signing_secret`` (at least 16 characters) signs every request and is stored encrypted."""
    errors: dict[str, str] = {}
    _check_name(name, errors)
    clean_url, clean_kinds, timeout, found = _check_endpoint(
        url=url, kinds=kinds, timeout_seconds=timeout_seconds, credential=credential, errors=errors
    )
    _check_secret(signing_secret, "signing_secret", errors, minimum=MIN_SIGNING_SECRET)
    if errors:
        raise _invalid(errors)
    if Endpoint.objects.filter(name=name).exists():
        raise NameTaken(f"an endpoint named {name!r} exists already")
    taken = _kinds_taken(clean_kinds, but=None) if enabled else {}
    if taken:
        raise _invalid({"kinds": ", ".join(f"{k} goes to {n} already" for k, n in sorted(taken.items()))})
    endpoint = Endpoint.objects.create(
        name=name,
        url=clean_url,
        kinds=clean_kinds,
        credential=found,
        signing_secret=secret_encrypt(signing_secret),
        enabled=bool(enabled),
        timeout_seconds=timeout,
    )
    audit_record(actor=actor, verb="endpoint.created", target_type="endpoint", target_id=name, data=_describe(endpoint))
    return endpoint


_UNSET: Any = object()


@transaction.atomic
def endpoint_update(
    *,
    name: str,
    actor: Actor,
    url: str | None = None,
    kinds: list[str] | None = None,
    signing_secret: str | None = None,
    credential: Any = _UNSET,
    enabled: bool | None = None,
    timeout_seconds: float | None = None,
) -> Endpoint:
    """Change the given fields (``credential=None`` removes it). Audits what changed; a new
    signing secret is audited as set, never shown."""
    endpoint = Endpoint.objects.select_for_update(of=("self",)).select_related("credential").filter(name=name).first()
    if endpoint is None:
        raise IntegrationNotFound(f"no endpoint named {name!r}", name=name)
    before = _describe(endpoint)
    errors: dict[str, str] = {}
    current_credential = endpoint.credential.name if endpoint.credential else None
    clean_url, clean_kinds, timeout, found = _check_endpoint(
        url=endpoint.url if url is None else url,
        kinds=endpoint.kinds if kinds is None else kinds,
        timeout_seconds=endpoint.timeout_seconds if timeout_seconds is None else timeout_seconds,
        credential=current_credential if credential is _UNSET else credential,
        errors=errors,
    )
    if signing_secret is not None:
        _check_secret(signing_secret, "signing_secret", errors, minimum=MIN_SIGNING_SECRET)
    if errors:
        raise _invalid(errors)
    now_enabled = endpoint.enabled if enabled is None else bool(enabled)
    taken = _kinds_taken(clean_kinds, but=endpoint.pk) if now_enabled else {}
    if taken:
        raise _invalid({"kinds": ", ".join(f"{k} goes to {n} already" for k, n in sorted(taken.items()))})
    endpoint.url, endpoint.kinds, endpoint.timeout_seconds = clean_url, clean_kinds, timeout
    endpoint.credential, endpoint.enabled = found, now_enabled
    if signing_secret is not None:
        endpoint.signing_secret = secret_encrypt(signing_secret)
    endpoint.save()
    after = _describe(endpoint)
    changes: dict[str, Any] = {k: {"from": before[k], "to": v} for k, v in after.items() if before[k] != v}
    if signing_secret is not None:
        changes["signing_secret"] = "set"  # noqa: S105 (that it changed, never the value)
    if changes:
        audit_record(actor=actor, verb="endpoint.updated", target_type="endpoint", target_id=name, data=changes)
    return endpoint


@transaction.atomic
def endpoint_delete(*, name: str, actor: Actor) -> None:
    endpoint = Endpoint.objects.select_for_update().filter(name=name).first()
    if endpoint is None:
        raise IntegrationNotFound(f"no endpoint named {name!r}", name=name)
    data = _describe(endpoint)
    endpoint.delete()
    audit_record(actor=actor, verb="endpoint.deleted", target_type="endpoint", target_id=name, data=data)
