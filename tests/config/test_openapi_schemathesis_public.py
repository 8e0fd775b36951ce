"""Schemathesis over the operators' API on the public host (its /api/schema/), as the operator.

The same run as tests/config/test_openapi_schemathesis.py (its checks, its in-process WSGI
application, its test transaction) against config.urls_public, authenticated with a token of
the operator otto. Creating a tenant provisions a schema, so the examples are fewer here.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi import checks as openapi_checks

from config.connection import connection
from governance.tokens import token_issue
from tenants.models import Tenant
from tests.config.test_openapi_schemathesis import CHECKS, _connection_kept  # noqa: F401  (an autouse fixture)
from tests.conftest import OTTO

BASE_URL = "http://localhost"
URLCONF = "config.urls_public"
EXAMPLES = 6
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)

# Operations whose schema-valid requests may still be refused with 400: operation label → why.
VALID_MAY_BE_REFUSED: dict[str, str] = {
    "POST /api/v1/tenants/": (
        "the domain and the schema name must be free (a state of the database), the schema name not"
        " reserved (public, pg_*, spare_*) and the admin password must pass the password policy"
        " (common passwords, likeness to the e-mail): what no pattern says"
    ),
    "GET /api/v1/tenants/{id}/usage/": (
        "'from' must not be after 'to' and a period is at most 366 days: a rule across two parameters"
    ),
}


def _public_schema() -> dict[str, Any]:
    """The schema /api/schema/ serves on the public host, as JSON."""
    generated = SchemaGenerator(urlconf=URLCONF).get_schema(request=None, public=True)
    return cast("dict[str, Any]", json.loads(OpenApiJsonRenderer().render(generated)))


schema = schemathesis.openapi.from_dict(_public_schema())
schema.app = WSGIHandler()


@pytest.fixture
def otto_token(db: None) -> str:
    connection.set_schema_to_public()
    return token_issue(user=User.objects.get(username=OTTO), name="schemathesis").secret


def test_the_public_host_serves_the_operators_schema(public_client: Client) -> None:
    response = public_client.get("/api/schema/?format=json")

    assert response.status_code == 200
    paths = set(json.loads(response.content)["paths"])
    assert "/api/v1/tenants/" in paths and "/api/v1/tenants/{id}/limits/" in paths
    assert not any(path.startswith("/api/v1/agents") for path in paths)


@schema.parametrize()
@HYPOTHESIS
def test_every_operator_operation_answers_as_documented(case: Any, otto_token: str) -> None:
    checks = CHECKS
    if case.operation.label not in VALID_MAY_BE_REFUSED:
        checks = [*CHECKS, openapi_checks.positive_data_acceptance]
    if case.cookies:
        case.cookies.pop("sessionid", None)
    case.call_and_validate(checks=checks, headers={"Authorization": f"Bearer {otto_token}"}, base_url=BASE_URL)


# ------------------------------------------------------------------ what the schema now says
def _otto(token: str) -> Client:
    return Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {token}")


def _patch(client: Client, url: str, body: Any) -> Any:
    return client.patch(url, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_agents": "12"}, "max_agents"),
        ({"max_agents": 1.5}, "max_agents"),
        ({"runs_per_day": True}, "runs_per_day"),
        ({"max_agents": -1}, "max_agents"),
        ({"max_seats": 3}, "max_seats"),
        ({}, "non_field_errors"),
    ],
)
def test_limits_are_json_whole_numbers(otto_token: str, acme: Tenant, body: dict[str, Any], field: str) -> None:
    response = _patch(_otto(otto_token), f"/api/v1/tenants/{acme.pk}/limits/", body)

    assert response.status_code == 400
    assert list(response.json()["extra"]["fields"]) == [field]
    assert Tenant.objects.get(pk=acme.pk).limit_overrides == acme.limit_overrides


def test_a_limit_patch_sets_and_drops_overrides(otto_token: str, acme: Tenant) -> None:
    otto = _otto(otto_token)
    assert _patch(otto, f"/api/v1/tenants/{acme.pk}/limits/", {"max_agents": 7}).json()["limits"]["max_agents"] == 7

    response = _patch(otto, f"/api/v1/tenants/{acme.pk}/limits/", {"max_agents": None})

    assert response.status_code == 200
    assert "max_agents" not in (Tenant.objects.get(pk=acme.pk).limit_overrides or {})


@pytest.mark.parametrize(("query", "status"), [("from=20260101", 400), ("to=2026-W01-1", 400), ("from=&to=", 200)])
def test_usage_days_are_yyyy_mm_dd_and_empty_is_the_default(
    otto_token: str, acme: Tenant, query: str, status: int
) -> None:
    response = _otto(otto_token).get(f"/api/v1/tenants/{acme.pk}/usage/?{query}")

    assert response.status_code == status, response.content
    if status == 200:
        assert set(response.json()) == {"tenant", "schema_name", "from", "to", "rows", "totals"}


def test_a_page_far_past_the_end_is_a_404(otto_token: str) -> None:
    response = _otto(otto_token).get("/api/v1/tenants/?page=14443843938052306217467904")

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": 5}, "name"),
        ({"domain": "gamma..localhost"}, "domain"),
        ({"schema_name": "Gamma"}, "schema_name"),
        ({"admin_email": "gina"}, "admin_email"),
    ],
)
def test_a_tenant_body_the_schema_refuses_is_a_400_naming_the_field(
    otto_token: str, values: dict[str, Any], field: str
) -> None:
    body = {"name": "Gamma", "domain": "gamma.localhost", "tier": "professional", "admin_email": "gina@gamma.example"}
    response = _otto(otto_token).post(
        "/api/v1/tenants/", json.dumps({**body, **values}), content_type="application/json"
    )

    assert response.status_code == 400
    assert list(response.json()["extra"]["fields"]) == [field]
    assert not Tenant.objects.filter(schema_name="gamma").exists()
