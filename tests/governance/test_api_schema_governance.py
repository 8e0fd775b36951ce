"""The governance API answers as its OpenAPI schema says: sign-in with wrong credentials is a
401, bodies are JSON with typed fields, the audit filters take what the schema shows (an empty
text filter is no filter) and refuse the rest naming the filter, the export documents both of
its content types."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.http import StreamingHttpResponse
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from config.connection import connection
from governance.actors import Actor
from governance.models import ApiToken
from governance.services import audit_record
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE, PASSWORD

from .conftest import chain_head

AUDIT = "/api/v1/governance/audit/"


def _post(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


@pytest.fixture
def alice(acme: Tenant) -> Client:
    return signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)


@pytest.fixture
def marked(in_acme: Tenant) -> str:
    correlation = f"test-schema-{chain_head()[0]}"
    for i in range(3):
        audit_record(
            actor=Actor.system("tests"),
            verb="test.schema",
            target_type="test",
            target_id=str(i),
            correlation_id=correlation,
        )
    connection.set_schema_to_public()
    return correlation


@pytest.fixture(scope="module")
def tenant_schema() -> dict[str, Any]:
    return SchemaGenerator(urlconf="config.urls_tenant").get_schema(request=None, public=True)


# ------------------------------------------------------------------------ sign-in
def test_wrong_credentials_are_a_401_and_a_token_needs_none_of_them(acme: Tenant) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    response = _post(client, "/api/v1/auth/token/", {"username": ALICE, "password": "not-it-4411"})

    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_credentials",
        "detail": "Unable to sign in with these credentials.",
        "extra": {},
    }
    assert response["WWW-Authenticate"] == 'Token realm="api"'
    assert not ApiToken.objects.filter(name="password sign-in", user__username=ALICE).exists()


def test_a_form_body_is_refused_with_415(acme: Tenant) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    response = client.post("/api/v1/auth/token/", {"username": ALICE, "password": PASSWORD})

    assert response.status_code == 415


def test_a_blank_token_name_is_refused(acme: Tenant, alice: Client) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    signed = _post(client, "/api/v1/auth/token/", {"username": ALICE, "password": PASSWORD, "name": "  "})
    assert (signed.status_code, list(signed.json()["extra"]["fields"])) == (400, ["name"])

    blank = _post(alice, "/api/v1/auth/tokens/", {"name": "   "})
    too_long = _post(
        alice, "/api/v1/auth/tokens/", {"name": "x", "expires_in_days": settings.VIGIL_API_TOKEN_MAX_DAYS + 1}
    )
    protected = _post(alice, "/api/v1/auth/tokens/", {"name": "x", "prefix": "abc"})

    assert (blank.status_code, list(blank.json()["extra"]["fields"])) == (400, ["name"])
    assert (too_long.status_code, list(too_long.json()["extra"]["fields"])) == (400, ["expires_in_days"])
    assert (protected.status_code, list(protected.json()["extra"]["fields"])) == (400, ["prefix"])


def test_the_token_schemas_say_what_the_server_checks(tenant_schema: dict[str, Any]) -> None:
    components = tenant_schema["components"]["schemas"]
    token_in = components["TokenInRequest"]["properties"]

    # The pattern refuses what the server refuses: blank names and NUL characters.
    assert [bool(re.search(token_in["name"]["pattern"], v)) for v in ("ok", " a ", "  ", "a\x00")] == [
        True,
        True,
        False,
        False,
    ]
    assert token_in["expires_in_days"]["maximum"] == settings.VIGIL_API_TOKEN_MAX_DAYS
    unlock = components["UnlockInRequest"]
    assert unlock["minProperties"] == 1
    assert unlock["properties"]["ip"]["anyOf"] == [{"format": "ipv4"}, {"format": "ipv6"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "username"),
        ({"ip": "00"}, "ip"),
        ({"username": ""}, "username"),
        ({"ip": "10.0.0.1", "was_locked": True}, "was_locked"),
    ],
)
def test_unlock_refuses_a_body_naming_nothing_or_a_bad_address(alice: Client, body: dict[str, Any], field: str) -> None:
    response = _post(alice, "/api/v1/auth/unlock/", body)

    assert response.status_code == 400
    assert list(response.json()["extra"]["fields"]) == [field]


def test_unlock_takes_an_ipv6_address(alice: Client) -> None:
    response = _post(alice, "/api/v1/auth/unlock/", {"ip": "2001:db8::1"})

    assert response.status_code == 200
    assert response.json() == {"username": "", "ip": "2001:db8::1", "was_locked": False}


# ------------------------------------------------------------------------ the audit trail
def test_an_empty_text_filter_is_no_filter(alice: Client, marked: str) -> None:
    query = {"correlation_id": marked, "actor": "", "verb": "", "target": ""}
    response = alice.get(f"{AUDIT}?{urlencode(query)}")

    assert response.status_code == 200, response.content
    assert [event["target_id"] for event in response.json()["results"]] == ["2", "1", "0"]


def test_a_range_that_ends_before_it_starts_selects_nothing(alice: Client, marked: str) -> None:
    query = {"correlation_id": marked, "from": "2026-02-01", "to": "2026-01-01"}
    response = alice.get(f"{AUDIT}?{urlencode(query)}")

    assert (response.status_code, response.json()["results"]) == (200, [])


def test_the_cursor_is_the_last_seq_shown(alice: Client, marked: str) -> None:
    first = alice.get(f"{AUDIT}?{urlencode({'correlation_id': marked, 'limit': 2})}").json()
    cursor = first["next"].rsplit("cursor=", 1)[1]

    assert cursor == str(first["results"][-1]["seq"])
    assert [event["target_id"] for event in alice.get(first["next"]).json()["results"]] == ["0"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"actor": "system:"}, "actor"),
        ({"actor": " system"}, "actor"),
        ({"verb": "a.*.b"}, "verb"),
        ({"verb": "x" * 101}, "verb"),
        ({"agent": "-1"}, "agent"),
        ({"from": ""}, "from"),
        ({"cursor": ""}, "cursor"),
    ],
)
def test_a_value_outside_the_documented_pattern_is_a_400_naming_it(
    alice: Client, params: dict[str, str], name: str
) -> None:
    response = alice.get(f"{AUDIT}?{urlencode(params)}")

    assert response.status_code == 400
    assert response.json()["extra"] == {"filter": name}


def test_the_audit_schema_documents_the_filters_and_both_export_types(tenant_schema: dict[str, Any]) -> None:
    listing = tenant_schema["paths"]["/api/v1/governance/audit/"]["get"]
    parameters = {p["name"]: p["schema"] for p in listing["parameters"]}
    export = tenant_schema["paths"]["/api/v1/governance/audit/export/"]["get"]

    assert parameters["actor"]["pattern"].startswith("^((")
    assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 500}
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert page == {"$ref": "#/components/schemas/AuditPageOut"}
    assert set(export["responses"]["200"]["content"]) == {"text/csv", "application/x-ndjson"}


@pytest.mark.parametrize(("fmt", "content_type"), [("csv", "text/csv"), ("jsonl", "application/x-ndjson")])
def test_the_export_answers_the_documented_content_type(
    alice: Client, marked: str, fmt: str, content_type: str
) -> None:
    response = alice.get(f"{AUDIT}export/?{urlencode({'format': fmt, 'correlation_id': marked, 'actor': ''})}")

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].split(";")[0] == content_type
    assert marked in b"".join(response.streaming_content).decode()
