"""The audit trail in the API: a filtered list with cursor pagination, and the streamed export.

Who reads it: any role (the ``view`` capability reads the audit trail, as in the admin). A
user limited to some agents (``governance.access`` agent scopes) reads only the events of
those agents and their own actions: the rest of the trail (other agents, other users, roles,
logins) is not theirs to see. Their export says so in its proof (``filters.scope``) and is
never ``complete``; each event in it is still proved by its own hash.

``GET /api/v1/governance/audit/`` answers ``{"next": URL or null, "results": [...]}``, newest
first, ``limit`` events a page (1-500, default 50). ``next`` carries an opaque ``cursor`` (the
last seq shown, a number): events appended meanwhile never shift a page. ``GET …/audit/export/?format=
csv|jsonl`` streams the chain (governance/export.py describes both formats and the proof).
Both take the filters of governance/audit_query.py; a bad one is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.actors import Actor
from governance.api import CanView
from governance.audit_query import (
    MAX_AGENT_ID,
    PATTERNS,
    RULES,
    AuditFilterError,
    audit_event_dict,
    audit_filter_parse,
    audit_visible,
)
from governance.export import FORMATS, audit_export
from governance.models import ActorType

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
CURSOR_PATTERN = r"^[0-9]{1,18}$"
_TIME = {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]}


def _text(name: str) -> OpenApiParameter:
    schema = {"type": "string", "pattern": PATTERNS[name]}
    return OpenApiParameter(name, schema, description=f"{RULES[name]}; empty: no filter")


_FILTER_PARAMETERS = [
    _text("actor"),
    OpenApiParameter("agent", {"type": "integer", "minimum": 0, "maximum": MAX_AGENT_ID}, description="an agent's id"),
    _text("verb"),
    _text("target"),
    OpenApiParameter("from", _TIME, description="ISO 8601, included; without an offset UTC, a date is its midnight"),
    OpenApiParameter("to", _TIME, description="ISO 8601, excluded; not later than 'from': nothing matches"),
    _text("correlation_id"),
]


class AuditEventOut(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor_type = serializers.ChoiceField(choices=ActorType.choices)
    actor_id = serializers.CharField()
    actor_label = serializers.CharField()
    verb = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    correlation_id = serializers.CharField()
    # DRF's metaclass takes declared fields off the class: ``data`` does not shadow Serializer.data.
    data = serializers.JSONField(help_text="what the event records, by verb")  # type: ignore[assignment]
    prev_hash = serializers.CharField(help_text="the previous event's hash (hex SHA-256)")
    hash = serializers.CharField(help_text="this event's hash, over its body and prev_hash")


class AuditPageOut(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="the next (older) page, or null at the end")
    results = AuditEventOut(many=True)


def _cursor_encode(seq: int) -> str:
    return str(seq)


def _cursor_decode(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise AuditFilterError("cursor: not a cursor this API gave out", filter="cursor")
    return int(value)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()) or len(value) > 18 or not 1 <= int(value) <= MAX_LIMIT:
        raise AuditFilterError(f"limit: a whole number from 1 to {MAX_LIMIT}", filter="limit")
    return int(value)


def _next_chunk(chunks: Iterator[str]) -> str | None:
    return next(chunks, None)


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    """``chunks`` for an ASGI server, each read on the request's own thread (where its
    database connection and schema are), one at a time."""
    step = sync_to_async(_next_chunk, thread_sensitive=True)
    while (chunk := await step(chunks)) is not None:
        yield chunk


class AuditListApi(APIView):
    """Audit events, newest first, filtered; follow ``next`` for older ones."""

    permission_classes = [CanView]

    @extend_schema(
        parameters=[
            *_FILTER_PARAMETERS,
            OpenApiParameter("cursor", {"type": "string", "pattern": CURSOR_PATTERN}, description="from `next`"),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, description=f"default {DEFAULT_LIMIT}"
            ),
        ],
        responses={200: AuditPageOut},
    )
    def get(self, request: Request) -> Response:
        params = {key: request.query_params[key] for key in request.query_params}
        # ``format`` is DRF's (json, api), not a filter.
        parsed = audit_filter_parse(params, allowed_extra=("cursor", "limit", "format"))
        audit_filter = audit_visible(request.user, parsed)
        limit = _limit(params.get("limit"))
        events = audit_filter.queryset().order_by("-seq")
        if "cursor" in params:
            events = events.filter(seq__lt=_cursor_decode(params["cursor"]))
        page = list(events[: limit + 1])
        following = None
        if len(page) > limit:
            page = page[:limit]
            query = request.query_params.copy()
            query["cursor"] = _cursor_encode(page[-1].seq)
            following = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"next": following, "results": [audit_event_dict(event) for event in page]})


class AuditExportApi(APIView):
    """The audit chain (or the part the filters select) streamed as CSV or JSONL, ending with
    the chain proof; ``manage.py verify_export FILE`` checks a saved copy offline."""

    permission_classes = [CanView]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        # ``format`` names the export's format here, not one of DRF's renderers: errors are JSON.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(FORMATS), required=True), *_FILTER_PARAMETERS],
        responses={
            (200, FORMATS["csv"].split(";")[0]): OpenApiTypes.STR,
            (200, FORMATS["jsonl"]): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request) -> Any:
        params = {key: request.query_params[key] for key in request.query_params}
        fmt = params.pop("format", None)
        if fmt not in FORMATS:
            raise AuditFilterError(f"format: one of {', '.join(FORMATS)}", filter="format")
        audit_filter = audit_visible(request.user, audit_filter_parse(params))
        export = audit_export(audit_filter=audit_filter, fmt=fmt, actor=Actor.for_user(request.user))
        # Under ASGI a synchronous iterator would be read whole before the first byte is sent.
        chunks = _async_chunks(export.chunks) if isinstance(request._request, ASGIRequest) else export.chunks
        response = StreamingHttpResponse(chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["X-Audit-Head-Seq"] = str(export.head_seq)
        return response
