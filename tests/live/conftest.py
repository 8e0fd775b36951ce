"""A real uvicorn server (several worker processes, as in production) on the test database,
and helpers to talk to it as a browser or an API client would; no tests here.

Tenant host names (acme.localhost) do not resolve outside a browser, so requests connect to
127.0.0.1 and name the tenant in the Host header, as a proxy would."""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from websockets.sync.client import ClientConnection, connect

from tests.conftest import PASSWORD


@pytest.fixture
def live_layer(celery_env: dict[str, str]) -> Iterator[None]:
    """This process publishes to the session's Redis, where the server's sockets listen."""
    url = celery_env["REDIS_URL"]
    layers = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": None}], "capacity": 1000},
        }
    }
    with override_settings(REDIS_URL=url, CHANNEL_LAYERS=layers):
        yield


def api(port: int, host: str, method: str, path: str, *, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """One HTTP request to the test server on ``host``'s tenant: (status, decoded JSON or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    try:
        return response.status, json.loads(data) if data else None
    except ValueError:
        return response.status, None


def token(port: int, host: str, username: str) -> str:
    status, data = api(port, host, "POST", "/api/v1/auth/token/", body={"username": username, "password": PASSWORD})
    assert status == 200, data
    return str(data["token"])


def ticket(port: int, host: str, api_token: str) -> list[str]:
    """The subprotocols that open a socket with a fresh ticket."""
    status, data = api(port, host, "POST", "/api/v1/live/ticket/", token=api_token)
    assert status == 201, data
    return list(data["subprotocols"])


def open_socket(
    port: int,
    host: str,
    *,
    subprotocols: list[str] | None = None,
    origin: str | None = None,
    cookie: str | None = None,
) -> ClientConnection:
    """A websocket to ``/ws/live/`` of ``host``'s tenant (raises InvalidStatus when refused)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    headers = {"Cookie": cookie} if cookie else None
    return connect(
        f"ws://{host}/ws/live/",
        sock=sock,
        origin=origin,  # type: ignore[arg-type]
        subprotocols=subprotocols,  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=10,
    )


def frames(ws: ClientConnection, *, seconds: float) -> list[dict[str, Any]]:
    """Every frame received within ``seconds``."""
    import time

    found = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            found.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return found


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
