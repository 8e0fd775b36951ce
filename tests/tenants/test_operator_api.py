"""The operators' tenant API on the public domain (tenants.api): operator tokens only, every
write through the provisioning and lifecycle services and audited in the public chain."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from config.connection import connection
from tenants.models import Tenant, TenantStatus, UsageDay
from tests.agents.api_support import token_for
from tests.conftest import ALICE, OTTO, PASSWORD, host_client
from tests.tenants.stored import audit_head, audit_since, footprint, user_in

LIST = "/api/v1/tenants/"


@pytest.fixture
def otto_api(public_client: Client) -> Client:
    """Otto with an operator token issued on the public domain."""
    return _bearer("localhost", f"Bearer {token_for(public_client, OTTO)}")


def _bearer(host: str, authorization: str) -> Client:
    return Client(HTTP_HOST=host, HTTP_AUTHORIZATION=authorization)


def _json(client: Client, method: str, url: str, body: Any = None) -> Any:
    return getattr(client, method)(url, json.dumps(body or {}), content_type="application/json")


def _new_tenant(**values: Any) -> dict[str, Any]:
    return {
        "name": "Gamma",
        "domain": "gamma.localhost",
        "tier": "professional",
        "admin_email": "gina@gamma.example",
        "admin_password": PASSWORD,
        **values,
    }


# ------------------------------------------------------------------------ who may
def test_anonymous_is_refused_with_401(public_client: Client, acme: Tenant) -> None:
    for url in (LIST, f"{LIST}{acme.pk}/", f"{LIST}{acme.pk}/usage/"):
        response = public_client.get(url)
        assert response.status_code == 401, url
        assert response.json()["code"] == "not_authenticated"
    assert _json(public_client, "post", f"{LIST}{acme.pk}/suspend/").status_code == 401
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.ACTIVE


def test_a_tenant_users_token_is_refused_on_the_public_domain(acme_client: Client, acme: Tenant) -> None:
    token = token_for(acme_client, ALICE)
    assert _bearer("acme.localhost", f"Bearer {token}").get("/api/v1/agents/").status_code == 200

    outsider = _bearer("localhost", f"Bearer {token}")

    assert outsider.get(LIST).status_code == 401
    assert _json(outsider, "post", f"{LIST}{acme.pk}/suspend/").status_code == 401
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.ACTIVE


def test_an_operators_token_does_not_work_on_a_tenants_domain(otto_api: Client) -> None:
    token = otto_api.defaults["HTTP_AUTHORIZATION"]

    assert _bearer("acme.localhost", token).get("/api/v1/agents/").status_code == 401


def test_a_public_user_without_the_operator_role_is_refused_with_403(public_client: Client, acme: Tenant) -> None:
    User.objects.create_user("pat@vigil.example", "pat@vigil.example", PASSWORD)  # not staff
    pat = _bearer("localhost", f"Bearer {token_for(public_client, 'pat@vigil.example')}")

    assert pat.get(LIST).status_code == 403
    response = _json(pat, "post", f"{LIST}{acme.pk}/suspend/")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.ACTIVE


def test_an_operators_session_works_too(public_client: Client) -> None:
    public_client.force_login(User.objects.get(username=OTTO))

    assert public_client.get(LIST).status_code == 200


# ------------------------------------------------------------------------ reading
def test_list_shows_customer_tenants_paginated(otto_api: Client, acme: Tenant, beta: Tenant) -> None:
    response = otto_api.get(LIST)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and body["next"] is None
    listed = {t["schema_name"]: t for t in body["results"]}
    assert set(listed) == {"acme", "beta"}  # neither public nor the spares
    assert listed["acme"]["domain"] == "acme.localhost" and listed["acme"]["status"] == "active"
    assert listed["acme"]["limits"]["max_agents"] == 10  # starter


def test_detail_and_an_unknown_tenant(otto_api: Client, acme: Tenant) -> None:
    spare = Tenant.objects.filter(status=TenantStatus.SPARE).first()
    assert spare is not None

    assert otto_api.get(f"{LIST}{acme.pk}/").json()["name"] == acme.name
    for pk in (spare.pk, 999_999):
        response = otto_api.get(f"{LIST}{pk}/")
        assert response.status_code == 404 and response.json()["code"] == "tenant_not_found"


def test_usage_answers_the_tenants_rows_and_totals(otto_api: Client, acme: Tenant, beta: Tenant) -> None:
    UsageDay.objects.create(tenant=acme, day="2026-03-02", model="gpt-4o-mini", runs=3, steps=9, tokens_in=100)
    UsageDay.objects.create(tenant=beta, day="2026-03-02", model="gpt-4o-mini", runs=7)

    response = otto_api.get(f"{LIST}{acme.pk}/usage/?from=2026-03-01&to=2026-03-31")

    assert response.status_code == 200
    body = response.json()
    assert body["schema_name"] == "acme" and body["from"] == "2026-03-01"
    assert [(r["day"], r["model"], r["runs"]) for r in body["rows"]] == [("2026-03-02", "gpt-4o-mini", 3)]
    assert body["totals"]["runs"] == 3 and body["totals"]["tokens_in"] == 100
    bad = otto_api.get(f"{LIST}{acme.pk}/usage/?from=March")
    assert bad.status_code == 400 and bad.json()["extra"]["field"] == "from"
    assert otto_api.get(f"{LIST}{acme.pk}/usage/?tenant=beta").status_code == 400


# ------------------------------------------------------------------------ provisioning
def test_post_provisions_a_tenant_with_its_admin_and_audits_it(otto_api: Client) -> None:
    head = audit_head("public")

    response = _json(otto_api, "post", LIST, _new_tenant())

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["tenant"]["schema_name"] == "gamma" and body["tenant"]["tier"] == "professional"
    assert body["admin_username"] == "gina@gamma.example" and body["invitation_url"] is None
    assert "admin_password" not in json.dumps(body)
    assert Tenant.objects.get(schema_name="gamma").domains.get().domain == "gamma.localhost"
    events = audit_since("public", head, verb="tenant.provisioned")
    assert [(e.target_id, e.actor_label) for e in events] == [("gamma", OTTO)]
    gina, roles = user_in("gamma", "gina@gamma.example")
    assert gina.check_password(PASSWORD) and roles == ["admin"]


def test_post_without_a_password_answers_an_invitation(otto_api: Client) -> None:
    body = _new_tenant()
    del body["admin_password"]

    response = _json(otto_api, "post", LIST, body)

    assert response.status_code == 201
    assert response.json()["invitation_url"].startswith("http://gamma.localhost")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"domain": "acme.localhost"}, "domain"),
        ({"domain": "not a host"}, "domain"),
        ({"admin_email": "nope"}, "admin_email"),
        ({"admin_password": "short"}, "admin_password"),
        ({"name": ""}, "name"),
        ({"schema_name": "public"}, "schema_name"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(otto_api: Client, values: dict[str, Any], field: str) -> None:
    before, head = footprint(), audit_head("public")

    response = _json(otto_api, "post", LIST, _new_tenant(**values))

    assert response.status_code == 400, response.content
    body = response.json()
    assert field in json.dumps(body["extra"]), body
    assert footprint() == before and audit_head("public") == head


def test_unknown_tier_and_unknown_fields_are_refused(otto_api: Client) -> None:
    before = footprint()

    tier = _json(otto_api, "post", LIST, _new_tenant(tier="platinum"))
    extra = _json(otto_api, "post", LIST, _new_tenant(status="suspended"))

    assert tier.status_code == 400 and "tier" in tier.json()["extra"]["fields"]
    assert extra.status_code == 400 and "status" in extra.json()["extra"]["fields"]
    assert footprint() == before


# ------------------------------------------------------------------------ lifecycle
def test_suspend_then_activate_audited_with_the_operator(otto_api: Client, acme: Tenant) -> None:
    head = audit_head("public")

    suspended = _json(otto_api, "post", f"{LIST}{acme.pk}/suspend/")

    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert host_client("acme.localhost").get("/api/v1/agents/").status_code == 403
    again = _json(otto_api, "post", f"{LIST}{acme.pk}/suspend/")
    assert again.status_code == 409 and again.json()["code"] == "tenant_state_conflict"

    activated = _json(otto_api, "post", f"{LIST}{acme.pk}/activate")  # no trailing slash: no redirect

    assert activated.status_code == 200 and activated.json()["status"] == "active"
    events = [(e.verb, e.actor_label) for e in audit_since("public", head)]
    assert events == [("tenant.suspended", OTTO), ("tenant.resumed", OTTO)]


# ------------------------------------------------------------------------ limits
def test_limits_override_and_reset_audited(otto_api: Client, acme: Tenant) -> None:
    head = audit_head("public")

    response = _json(otto_api, "patch", f"{LIST}{acme.pk}/limits/", {"max_agents": 25, "runs_per_day": 10})

    assert response.status_code == 200, response.content
    assert response.json()["limit_overrides"] == {"max_agents": 25, "runs_per_day": 10}
    assert response.json()["limits"]["max_agents"] == 25
    reset = _json(otto_api, "patch", f"{LIST}{acme.pk}/limits/", {"runs_per_day": None})
    assert reset.json()["limit_overrides"] == {"max_agents": 25}
    assert reset.json()["limits"]["runs_per_day"] == 2_000  # the starter tier's again
    events = audit_since("public", head, verb="tenant.updated")
    assert len(events) == 2 and all(e.actor_label == OTTO for e in events)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_agentz": 3}, "max_agentz"),
        ({"max_agents": -1}, "max_agents"),
        ({"max_agents": "ten"}, "max_agents"),
        ({"max_agents": True}, "max_agents"),
        ({}, "non_field_errors"),
    ],
)
def test_bad_limits_name_the_limit_and_change_nothing(
    otto_api: Client, acme: Tenant, body: dict[str, Any], field: str
) -> None:
    head = audit_head("public")

    response = _json(otto_api, "patch", f"{LIST}{acme.pk}/limits/", body)

    assert response.status_code == 400
    assert field in response.json()["extra"]["fields"]
    assert Tenant.objects.get(pk=acme.pk).limit_overrides == acme.limit_overrides
    assert audit_head("public") == head


# ------------------------------------------------------------------------ the public matrix
OPERATOR, NOT_OPERATOR, ANONYMOUS, TENANT_TOKEN = "operator", "public user without the role", "anonymous", "alice"
# (URL name, method) -> who may, on the public domain's API. Tokens are the caller's own.
PUBLIC_API: dict[tuple[str, str], frozenset[str]] = {
    # A tenant's credential is refused (401) even where none is needed.
    ("operator-api-token", "post"): frozenset({OPERATOR, NOT_OPERATOR, ANONYMOUS}),
    ("operator-api-token-list", "get"): frozenset({OPERATOR, NOT_OPERATOR}),
    ("operator-api-token-list", "post"): frozenset({OPERATOR, NOT_OPERATOR}),
    ("operator-api-token-detail", "delete"): frozenset({OPERATOR, NOT_OPERATOR}),
    ("operator-tenant-list", "get"): frozenset({OPERATOR}),
    ("operator-tenant-list", "post"): frozenset({OPERATOR}),
    ("operator-tenant-detail", "get"): frozenset({OPERATOR}),
    ("operator-tenant-usage", "get"): frozenset({OPERATOR}),
    ("operator-tenant-suspend", "post"): frozenset({OPERATOR}),
    ("operator-tenant-activate", "post"): frozenset({OPERATOR}),
    ("operator-tenant-limits", "patch"): frozenset({OPERATOR}),
    ("operator-api-schema", "get"): frozenset({OPERATOR, NOT_OPERATOR, ANONYMOUS}),
}


def _public_api_patterns() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and (prefix + str(pattern.pattern)).startswith("api/"):
                view = pattern.callback.view_class  # type: ignore[attr-defined]
                methods = {m for m in view.http_method_names if m not in ("options", "head", "trace")}
                found.update((str(pattern.name), m) for m in methods if hasattr(view, m))

    walk(get_resolver("config.urls_public").url_patterns, "")
    return found


def test_every_public_api_pattern_has_a_matrix_entry() -> None:
    assert _public_api_patterns() == set(PUBLIC_API)


@pytest.mark.parametrize("actor", (OPERATOR, NOT_OPERATOR, ANONYMOUS, TENANT_TOKEN))
def test_each_public_api_endpoint_answers_each_actor_as_the_matrix_says(
    public_client: Client, acme_client: Client, acme: Tenant, actor: str
) -> None:
    User.objects.create_user("pat@vigil.example", "pat@vigil.example", PASSWORD)
    login = {OPERATOR: OTTO, NOT_OPERATOR: "pat@vigil.example"}
    if actor in login:
        # A session, since only a session issues tokens; operators' tokens are tested above.
        client = host_client("localhost")
        client.force_login(User.objects.get(username=login[actor]))
    elif actor == TENANT_TOKEN:
        client = _bearer("localhost", f"Bearer {token_for(acme_client, ALICE)}")
    else:
        client = host_client("localhost")
    connection.set_schema_to_public()
    urls: dict[str, Callable[[], str]] = {
        "operator-api-token-detail": lambda: reverse("operator-api-token-detail", args=[999_999], urlconf=URLCONF),
    }
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        # Right credentials (anonymous signs in as otto): wrong ones are a 401 of their own.
        ("operator-api-token", "post"): {"username": login.get(actor, OTTO), "password": PASSWORD},
        ("operator-api-token-list", "post"): {"name": "matrix"},
        ("operator-tenant-list", "post"): _new_tenant(),
        ("operator-tenant-limits", "patch"): {"max_agents": 12},
    }
    wrong = []
    for (name, method), allowed in sorted(PUBLIC_API.items(), key=lambda e: (e[0][1] != "get", e[0])):
        if name in urls:
            url = urls[name]()
        elif name.startswith("operator-tenant-") and name != "operator-tenant-list":
            url = reverse(name, args=[acme.pk], urlconf=URLCONF)
        else:
            url = reverse(name, urlconf=URLCONF)
        body = bodies.get((name, method), {})
        response = client.get(url) if method == "get" else _json(client, method, url, body)
        status = response.status_code
        if actor in allowed:
            ok = status < 500 and status not in (401, 403, 405)
        elif actor in (ANONYMOUS, TENANT_TOKEN):
            ok = status == 401
        else:
            ok = status == 403
        if not ok:
            wrong.append(f"{method.upper()} {url} ({name}): {status} {response.content[:200]!r}")
    assert wrong == []


URLCONF = "config.urls_public"
