"""The audit trail's filters, shared by the API, the export and ``manage.py export_audit``.

Every filter is optional and they combine with AND:

An empty value of a text filter (``actor=``) is no filter, as a form's empty field means.

* ``actor``: ``TYPE`` or ``TYPE:ID`` (``user``, ``agent`` or ``system``; ``user:12``, ``agent:3``);
* ``agent``: an agent's id; the events the agent did, the events about the agent, and the
  events whose data names it (``agent_id``, as task transitions do);
* ``verb``: a verb (``approval.approved``) or a family of verbs (``approval.*``);
* ``target``: ``TYPE`` or ``TYPE:ID`` (``task:42``);
* ``from`` / ``to``: ISO 8601 times, ``from`` included, ``to`` excluded; without an offset the
  time is UTC, a bare date is its midnight; a ``to`` not later than ``from`` selects nothing;
* ``correlation_id``: the id one request, task or command gave all its events.

A bad value is refused with ``AuditFilterError`` naming the filter, never ignored: a
compliance query that silently dropped a filter would answer a different question.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import status as http

from config.errors import VigilError
from governance import access
from governance.models import ActorType, AuditEvent

FILTERS = ("actor", "agent", "verb", "target", "from", "to", "correlation_id")
# How audit events name an agent as their target: services say "agent", the admin the model label.
AGENT_TARGET_TYPES = ("agent", "agents.agent")
# The text filters' shapes; the OpenAPI schema shows the same patterns (governance.audit_api).
# An empty text filter is no filter; the typed ones (agent, from, to) must parse.
PATTERNS = {
    "actor": rf"^(({'|'.join(ActorType.values)})(:[^\x00]{{1,64}})?)?$",
    "verb": r"^([^*\x00]{0,100}|[^*\x00]{0,98}\.\*)$",
    "target": r"^([^:\x00]{1,100}(:[^\x00]{1,100})?)?$",
    "correlation_id": r"^[^\x00]{0,64}$",
}
RULES = {
    "actor": f"TYPE or TYPE:ID, TYPE one of {', '.join(ActorType.values)}, ID 1-64 characters",
    "verb": "a family of verbs ends with '.*' (approval.*), no other '*'; a verb has at most 100 characters",
    "target": "TYPE or TYPE:ID, TYPE 1-100 characters without ':', ID 1-100 characters",
    "correlation_id": "at most 64 characters",
}
MAX_AGENT_ID = 10**18 - 1


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

    def scoped(self, *, agent_ids: Iterable[int], user_id: str) -> AuditFilter:
        """This filter, narrowed to what a user limited to some agents may read: the events of
        those agents (as the ``agent`` filter finds them) and the user's own actions. The scope
        is part of ``given``: an export under it says so in its proof, and is not complete."""
        ids = sorted(set(agent_ids))
        scope = _agent_q(ids) | Q(actor_type=ActorType.USER, actor_id=user_id)
        label = f"agents {','.join(map(str, ids)) or 'none'} and user {user_id}"
        return AuditFilter(q=self.q & scope, given={**self.given, "scope": label})


def audit_visible(user: Any, audit_filter: AuditFilter) -> AuditFilter:
    """``audit_filter`` narrowed to what ``user`` may read: a user limited to some agents
    (``governance.access`` agent scopes) reads those agents' events and their own actions;
    everyone else the whole trail. (Whether they may read the trail at all is the ``view``
    capability's answer.)"""
    reach = access.agent_reach(user, access.Capability.VIEW)
    if reach is None:
        return audit_filter
    return audit_filter.scoped(agent_ids=reach, user_id=str(user.pk))


def _agent_q(agent_ids: list[int]) -> Q:
    """Events an agent did, events about it, events whose data names it."""
    ids = [str(agent_id) for agent_id in agent_ids]
    return (
        Q(actor_type=ActorType.AGENT, actor_id__in=ids)
        | Q(target_type__in=AGENT_TARGET_TYPES, target_id__in=ids)
        | Q(data__agent_id__in=agent_ids)
    )


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
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    # In UTC: PostgreSQL takes offsets up to 15:59 only (ISO 8601 allows more). An instant
    # before or after the years 1-9999 in UTC compares as their ends.
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        return (dt.datetime.min if moment.year == 1 else dt.datetime.max).replace(tzinfo=dt.UTC)


def _text(name: str, value: str) -> str:
    if re.fullmatch(PATTERNS[name].removeprefix("^").removesuffix("$"), value) is None:
        raise _fail(name, f"{RULES[name]}; got {value!r}")
    return value


def audit_filter_parse(params: Mapping[str, str], *, allowed_extra: Iterable[str] = ()) -> AuditFilter:
    """``params`` (a query string's values) as one filter. Raises AuditFilterError for an
    unknown parameter (other than ``allowed_extra``) or a bad value. A ``to`` not later than
    ``from`` is an empty range: nothing matches it."""
    extra = set(allowed_extra)
    unknown = sorted(set(params) - set(FILTERS) - extra)
    if unknown:
        raise AuditFilterError(f"unknown filter {unknown[0]!r}; filters are {', '.join(FILTERS)}", filter=unknown[0])
    q = Q()
    given: dict[str, str] = {}
    for name in FILTERS:
        value = params.get(name)
        if value is None or (name in PATTERNS and not _text(name, value)):
            continue
        given[name] = value
        if name in ("actor", "target"):
            kind, sep, ident = value.partition(":")
            field = "actor" if name == "actor" else "target"
            q &= Q(**{f"{field}_type": kind}) & (Q(**{f"{field}_id": ident}) if sep else Q())
        elif name == "agent":
            if not (value.isascii() and value.isdigit()) or len(value) > 18 or int(value) > MAX_AGENT_ID:
                raise _fail(name, f"an agent's id is a number from 0 to {MAX_AGENT_ID}, got {value!r}")
            q &= _agent_q([int(value)])
        elif name == "verb":
            q &= Q(verb__startswith=value[:-1]) if value.endswith(".*") else Q(verb=value)
        elif name == "from":
            q &= Q(created_at__gte=_time(name, value))
        elif name == "to":
            q &= Q(created_at__lt=_time(name, value))
        elif name == "correlation_id":
            q &= Q(correlation_id=value)
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
