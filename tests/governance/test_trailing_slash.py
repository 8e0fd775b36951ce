"""Every API path answers the same with and without its trailing slash: never a redirect, so
a client's POST (an approval) is served rather than turned into a lost 301."""

from __future__ import annotations

import json
import re

from django.test import Client
from django.urls import get_resolver

from config.connection import connection
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.agents.api_support import approval_opened, signed_in
from tests.conftest import ALICE, REFUND_TICKET, RITA

from .test_access_matrix import _methods, _patterns

REDIRECTS = (301, 302, 307, 308)


def _sample_path(route: str) -> str | None:
    """A concrete path for a URL pattern (every parameter "1"); None for DRF's format suffixes."""
    if "format" in route:
        return None
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
    path = re.sub(r"<(?:\w+:)?\w+>", "1", path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\", "")


def _api_routes() -> list[tuple[str, set[str]]]:
    routes = []
    for _, route, pattern in _patterns(get_resolver("config.urls_tenant").url_patterns):
        path = _sample_path(route)
        if path is not None and path.startswith("/api/") and path.endswith("/"):
            routes.append((path, _methods(pattern) or {"get"}))
    return routes


def test_every_api_path_answers_without_its_slash_as_with_it(acme: Tenant) -> None:
    anonymous = Client(HTTP_HOST="acme.localhost")
    alice = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    connection.set_schema_to_public()
    routes = _api_routes()
    assert len(routes) > 30  # the router's and the explicit paths
    wrong = []
    for path, methods in routes:
        bare = path.rstrip("/")
        # Reads as a signed-in admin; every method as anonymous (refused alike, no side effects).
        pairs = [(alice, "get")] if "get" in methods else []
        pairs += [(anonymous, method) for method in sorted(methods)]
        for client, method in pairs:
            if method == "get":
                with_slash, without = client.get(path), client.get(bare)
            else:
                send = getattr(client, method)
                with_slash = send(path, "{}", content_type="application/json")
                without = send(bare, "{}", content_type="application/json")
            if without.status_code in REDIRECTS or without.status_code != with_slash.status_code:
                wrong.append(f"{method.upper()} {bare}: {without.status_code}, with the slash {with_slash.status_code}")
    assert wrong == []


def test_a_post_without_the_slash_is_served_not_redirected(acme: Tenant) -> None:
    approval = approval_opened(
        acme, name="slashless", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
    )
    rita = signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA)

    response = rita.post(
        f"/api/v1/hitl/{approval.pk}/approve",
        json.dumps({"action_hash": approval.action_hash}),
        content_type="application/json",
    )

    assert response.status_code == 200, response.content
    connection.set_tenant(acme)
    assert ApprovalRequest.objects.get(pk=approval.pk).status == "approved"
    token = Client(HTTP_HOST="acme.localhost").post(
        "/api/v1/auth/token", {"username": RITA, "password": "correct-horse-battery-9"}, "application/json"
    )
    assert token.status_code == 200 and token.json()["token"].startswith("vgl_")
