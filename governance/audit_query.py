"""The audit trail's filters, shared by the API, the export and ``manage.py export_audit``.

Every filter is optional and they combine with AND:

* ``actor``: ``TYPE`` or ``TYPE:ID`` (``user``, ``agent`` or ``system``; ``user:12``, ``agent:3``);
* ``agent``: an agent's id; the events the agent did, the events about the agent, and the
  events whose data names it (``agent_id``, as task transitions do);
* ``verb``: a verb (``approval.approved``) or a family of verbs (``approval.*``);
* ``target``: ``TYPE`` or ``TYPE:ID`` (``task:42``);
* ``from`` / ``to``: ISO 8601 times, ``from`` included, ``to`` excluded; without an offset the
  time is UTC, a bare date is its midnight;
* ``correlation_id``: the id one request, task or command gave all its events.

A bad value is refused with ``AuditFilterError`` naming the filter, never ignored: a
compliance query that silently dropped a filter would answer a different question.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import status as http

from config.errors import VigilError
from governance.models import ActorType, AuditEvent

FILTERS = ("actor", "agent", "verb", "target", "from", "to", "correlation_id")
# How audit events name an agent as their target: services say "agent", the admin the model label.
AGENT_TARGET_TYPES = ("agent", "agents.agent")


class AuditFilterError(VigilError):
    code = "invalid_filter"
    status = http.HTTP_400_BAD_REQUEST


def _fail(name: str, detail: str) -> AuditFilterError:
    return AuditFilterError(f"{name}: {detail}", filter=name)


@dataclass(frozen=True)
class AuditFilter:
    """Parsed filters; ``given`` keeps what the caller asked for, as they wrote it."""

    q: Q
    given: dict[str, str]

    def queryset(self) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(self.q)


def _typed_id(name: str, value: str, *, max_type: int, max_id: int) -> tuple[str, str | None]:
    kind, sep, ident = value.partition(":")
    if not kind or len(kind) > max_type:
        raise _fail(name, f"expected TYPE or TYPE:ID, got {value!r}")
    if sep and (not ident or len(ident) > max_id):
        raise _fail(name, f"the id after ':' must be 1-{max_id} characters")
    return kind, (ident if sep else None)


def _time(name: str, value: str) -> dt.datetime:
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is not None:
                moment = dt.datetime.combine(day, dt.time())
    except ValueError:
        moment = None
    if moment is None:
        raise _fail(name, f"not an ISO 8601 date or time: {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def audit_filter_parse(params: Mapping[str, str], *, allowed_extra: Iterable[str] = ()) -> AuditFilter:
    """``params`` (a query string's values) as one filter. Raises AuditFilterError for an
    unknown parameter (other than ``allowed_extra``) or a bad value."""
    extra = set(allowed_extra)
    unknown = sorted(set(params) - set(FILTERS) - extra)
    if unknown:
        raise AuditFilterError(f"unknown filter {unknown[0]!r}; filters are {', '.join(FILTERS)}", filter=unknown[0])
    q = Q()
    given: dict[str, str] = {}
    for name in FILTERS:
        value = params.get(name)
        if value is None:
            continue
        value = value.strip()
        if not value:
            raise _fail(name, "empty value")
        given[name] = value
        if name == "actor":
            kind, ident = _typed_id(name, value, max_type=16, max_id=64)
            if kind not in ActorType.values:
                raise _fail(name, f"unknown actor type {kind!r}; types are {', '.join(ActorType.values)}")
            q &= Q(actor_type=kind) & (Q(actor_id=ident) if ident is not None else Q())
        elif name == "agent":
            if not (value.isascii() and value.isdigit()) or len(value) > 18:
                raise _fail(name, f"an agent's id is a number, got {value!r}")
            agent_id = int(value)
            q &= (
                Q(actor_type=ActorType.AGENT, actor_id=str(agent_id))
                | Q(target_type__in=AGENT_TARGET_TYPES, target_id=str(agent_id))
                | Q(data__agent_id=agent_id)
            )
        elif name == "verb":
            if len(value) > 100:
                raise _fail(name, "at most 100 characters")
            if value.endswith(".*"):
                q &= Q(verb__startswith=value[:-1])
            elif "*" in value:
                raise _fail(name, "a family of verbs ends with '.*' (approval.*); no other wildcard")
            else:
                q &= Q(verb=value)
        elif name == "target":
            kind, ident = _typed_id(name, value, max_type=100, max_id=100)
            q &= Q(target_type=kind) & (Q(target_id=ident) if ident is not None else Q())
        elif name == "from":
            q &= Q(created_at__gte=_time(name, value))
        elif name == "to":
            q &= Q(created_at__lt=_time(name, value))
        elif name == "correlation_id":
            if len(value) > 64:
                raise _fail(name, "at most 64 characters")
            q &= Q(correlation_id=value)
    if "from" in given and "to" in given and _time("to", given["to"]) <= _time("from", given["from"]):
        raise _fail("to", "must be later than 'from'")
    return AuditFilter(q=q, given=given)


def audit_event_dict(event: AuditEvent) -> dict[str, Any]:
    """One event as the API shows it: its columns, and the links of the chain."""
    return {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "verb": event.verb,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "correlation_id": event.correlation_id,
        "data": event.data,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
