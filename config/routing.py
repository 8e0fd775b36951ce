"""The websocket stack: tenant from Host, origin check, authentication, then the routes.

Every refusal happens before the handshake is accepted (the server answers it with HTTP 403),
so a refused client never holds an open socket:
- the Host must name an active tenant's domain;
- a browser's ``Origin`` must be the page's own origin (host and port): a socket opened by
  another site's page carries the user's cookies, the classic cross-site websocket hijack;
- the user comes from the session cookie (admin pages; only with an ``Origin``, as browsers
  send it) or from a single-use ticket issued by ``POST /api/v1/live/ticket`` on the same
  tenant, sent as the subprotocol ``vigil.ticket.<ticket>`` (API clients; never in the URL);
- the user must be active and hold a role.

The consumer then runs with ``scope["tenant"]`` and ``scope["user"]``; database calls from a
consumer run in a worker thread whose connection may have served another tenant last, so each
of them sets the schema itself (``tenant_sync``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.routing import URLRouter
from django.conf import settings
from django.http.cookie import parse_cookie
from django.urls import path

from config.connection import connection
from governance import live
from governance.consumers import OversightConsumer

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        found[key] = f"{found[key]}, {text}" if key in found and key == "sec-websocket-protocol" else text
    return found


def _host(headers: dict[str, str]) -> str:
    return headers.get("host", "").strip().lower()


def _hostname(host: str) -> str:
    return host.rsplit(":", 1)[0] if not host.endswith("]") else host


def origin_allowed(*, origin: str | None, host: str) -> bool:
    """Absent (not a browser), or the same host and port as the handshake's ``Host``."""
    if origin is None:
        return True
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = {"http": "80", "https": "443"}[parts.scheme]
    netloc = parts.netloc if ":" in parts.netloc else f"{parts.netloc}:{default}"
    wanted = host if ":" in host else f"{host}:{default}"
    return netloc == wanted


def _tenant_for(hostname: str) -> Any:
    from tenants.models import Domain, TenantStatus

    connection.set_schema_to_public()
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    if domain is None or domain.tenant.schema_name == "public":
        return None
    if domain.tenant.status != TenantStatus.ACTIVE:
        return None
    return domain.tenant


def _user_from_session(tenant: Any, session_key: str) -> Any:
    from django.contrib.auth import get_user
    from django.contrib.sessions.backends.db import SessionStore

    connection.set_tenant(tenant)

    class _Request:
        session = SessionStore(session_key)

    return get_user(_Request())  # type: ignore[arg-type]


def _user_from_ticket(tenant: Any, ticket: str) -> Any:
    from django.contrib.auth.models import User

    user_id = live.ticket_redeem(schema=tenant.schema_name, ticket=ticket)
    if user_id is None:
        return None
    connection.set_tenant(tenant)
    return User.objects.filter(pk=user_id, is_active=True).first()


def _may_watch(tenant: Any, user: Any) -> bool:
    from governance.access import roles_of

    connection.set_tenant(tenant)
    return bool(roles_of(user))


@database_sync_to_async
def _authenticate(hostname: str, session_key: str | None, ticket: str | None) -> tuple[Any, Any, str]:
    tenant = _tenant_for(hostname)
    if tenant is None:
        return None, None, "unknown_tenant"
    user = None
    if ticket is not None:
        user = _user_from_ticket(tenant, ticket)
    elif session_key:
        user = _user_from_session(tenant, session_key)
    if user is None or not user.is_authenticated:
        return tenant, None, "unauthenticated"
    if not _may_watch(tenant, user):
        return tenant, None, "no_role"
    return tenant, user, ""


async def _refuse(receive: Receive, send: Send) -> None:
    # Closing in answer to the connect message makes the server refuse the handshake (403).
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 4403})
            return
        if message["type"] == "websocket.disconnect":
            return


class LiveStackMiddleware:
    """Resolves the tenant, checks the origin and authenticates a websocket before its consumer
    runs; see the module docstring."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        headers = _headers(scope)
        host = _host(headers)
        origin = headers.get("origin")
        if not origin_allowed(origin=origin, host=host):
            logger.info("live.refused", extra={"reason": "origin", "host": host})
            return await _refuse(receive, send)
        ticket = None
        for protocol in scope.get("subprotocols", []):
            if protocol.startswith(live.TICKET_PREFIX):
                ticket = protocol[len(live.TICKET_PREFIX) :]
        session_key = None
        # Cookies ride along with any page's request; only a same-origin browser may use them.
        if origin is not None and ticket is None:
            session_key = parse_cookie(headers.get("cookie", "")).get(settings.SESSION_COOKIE_NAME)
        tenant, user, reason = await _authenticate(_hostname(host), session_key, ticket)
        if user is None:
            logger.info("live.refused", extra={"reason": reason, "host": host})
            return await _refuse(receive, send)
        return await self.inner({**scope, "tenant": tenant, "user": user}, receive, send)


websocket_routes = URLRouter([path("ws/live/", OversightConsumer.as_asgi())])
websocket_application = LiveStackMiddleware(websocket_routes)
