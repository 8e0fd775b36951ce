"""The audit trail in the API: a filtered list with cursor pagination, and the streamed export.

Who reads it: any role (the ``view`` capability reads the audit trail, as in the admin). The
trail is the tenant's one record and is not narrowed by agent scopes (``governance.access``
scopes the models of ``AGENT_PATHS`` only): many events belong to no agent (users, roles,
logins), and the chain can only be proved whole.

``GET /api/v1/governance/audit/`` answers ``{"next": URL or null, "results": [...]}``, newest
first, ``limit`` events a page (1-500, default 50). ``next`` carries an opaque ``cursor`` (the
last seq shown): events appended meanwhile never shift a page. ``GET …/audit/export/?format=
csv|jsonl`` streams the chain (governance/export.py describes both formats and the proof).
Both take the filters of governance/audit_query.py; a bad one is a 400 naming it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.actors import Actor
from governance.api import CanView
from governance.audit_query import AuditFilterError, audit_event_dict, audit_filter_parse
from governance.export import FORMATS, audit_export

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
_FILTER_PARAMETERS = [
    OpenApiParameter("actor", str, description="TYPE or TYPE:ID (user, agent, system)"),
    OpenApiParameter("agent", int, description="an agent's id"),
    OpenApiParameter("verb", str, description="a verb, or a family: approval.*"),
    OpenApiParameter("target", str, description="TYPE or TYPE:ID"),
    OpenApiParameter("from", str, description="ISO 8601, included"),
    OpenApiParameter("to", str, description="ISO 8601, excluded"),
    OpenApiParameter("correlation_id", str),
]


def _cursor_encode(seq: int) -> str:
    return base64.urlsafe_b64encode(f"before:{seq}".encode()).decode().rstrip("=")


def _cursor_decode(value: str) -> int:
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    kind, _, seq = text.partition(":")
    if kind != "before" or not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
        raise AuditFilterError("cursor: not a cursor this API gave out", filter="cursor")
    return int(seq)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
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
        parameters=[*_FILTER_PARAMETERS, OpenApiParameter("cursor", str), OpenApiParameter("limit", int)],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        params = {key: request.query_params[key] for key in request.query_params}
        # ``format`` is DRF's (json, api), not a filter.
        audit_filter = audit_filter_parse(params, allowed_extra=("cursor", "limit", "format"))
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
        responses={200: bytes},
    )
    def get(self, request: Request) -> Any:
        params = {key: request.query_params[key] for key in request.query_params}
        fmt = params.pop("format", None)
        if fmt not in FORMATS:
            raise AuditFilterError(f"format: one of {', '.join(FORMATS)}", filter="format")
        audit_filter = audit_filter_parse(params)
        export = audit_export(audit_filter=audit_filter, fmt=fmt, actor=Actor.for_user(request.user))
        # Under ASGI a synchronous iterator would be read whole before the first byte is sent.
        chunks = _async_chunks(export.chunks) if isinstance(request._request, ASGIRequest) else export.chunks
        response = StreamingHttpResponse(chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["X-Audit-Head-Seq"] = str(export.head_seq)
        return response
