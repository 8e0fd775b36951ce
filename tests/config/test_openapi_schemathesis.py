"""Schemathesis over the whole OpenAPI schema (/api/schema/), as acme's admin and as its viewer.

Every operation of the schema is called with generated requests (examples, coverage and fuzzing
phases, bounded so that the run fits CI), then the stateful phase chains operations along the
links Schemathesis infers (create an agent, read it, patch it, ...). The checks: no server
error, every status code, content type, header and body as the schema documents them, requests
that violate the schema refused, requests without or with wrong credentials refused, and
schema-valid requests accepted except where the operation's answer depends on what the schema
cannot say (see ``VALID_MAY_BE_REFUSED``).

Requests go to the application in this process (WSGI), inside the test's transaction: nothing
they write outlives the test. The tenant's request quota is raised for the run (in the same
transaction) so that the throttle does not answer most of the requests with 429.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from django.contrib.auth.models import Group, User
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import load_all_checks
from schemathesis.specs.openapi import checks as openapi_checks

from config.connection import connection
from governance.tokens import token_issue
from tenants.models import Tenant
from tests.config import (
    openapi_refusals_agents,
    openapi_refusals_governance,
    openapi_refusals_hitl,
    openapi_refusals_knowledge,
)
from tests.conftest import ALICE, PASSWORD, VERA

BASE_URL = "http://acme.localhost"
EXAMPLES = 12
STATEFUL_EXAMPLES = 8
WAIT_SECONDS = 0.05
STATEFUL_STEPS = 30
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)

load_all_checks()
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.ignored_auth,
]

# Operations whose schema-valid requests may still be refused with 400, because what decides it
# is not a shape the schema can state (credentials that are wrong, a body naming a row that does
# not exist, a rule across fields); each area lists its own, with the reason.
VALID_MAY_BE_REFUSED: dict[str, str] = {
    **openapi_refusals_agents.REFUSALS,
    **openapi_refusals_governance.REFUSALS,
    **openapi_refusals_hitl.REFUSALS,
    **openapi_refusals_knowledge.REFUSALS,
}


@pytest.fixture(autouse=True)
def _connection_kept() -> Iterator[None]:
    """Like django.test.Client, the application leaves the test's connection (and its
    transaction) open between requests."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def cast_tokens(acme: Tenant) -> dict[str, str]:
    """Bearer tokens of acme's admin and of a viewer, and a request quota the run cannot use up."""
    acme.limit_overrides = {**(acme.limit_overrides or {}), "requests_per_minute": 1_000_000}
    acme.save(update_fields=["limit_overrides"])
    connection.set_tenant(acme)
    viewer = User.objects.create_user(VERA, VERA, PASSWORD)
    viewer.groups.add(Group.objects.get(name="viewer"))
    tokens = {
        "admin": token_issue(user=User.objects.get(username=ALICE), name="schemathesis").secret,
        "viewer": token_issue(user=viewer, name="schemathesis").secret,
    }
    connection.set_schema_to_public()
    return tokens


def _tenant_schema() -> dict[str, Any]:
    """The schema /api/schema/ serves on a tenant's host, as JSON."""
    generated = SchemaGenerator(urlconf="config.urls_tenant").get_schema(request=None, public=True)
    raw = cast("dict[str, Any]", json.loads(OpenApiJsonRenderer().render(generated)))
    raw["servers"] = [{"url": BASE_URL}]
    return raw


schema = schemathesis.openapi.from_dict(_tenant_schema())
# Requests (and the checks' own probes) go to the Django application in this process.
schema.app = WSGIHandler()


def _prepared(case: Any) -> Any:
    """The run authenticates with its tokens only (the schema also offers session cookies), and
    ``?wait=`` of the execute operation is kept short: with no worker in this process the task
    never finishes, and waiting the generated seconds would only make the run slow."""
    if case.cookies:
        case.cookies.pop("sessionid", None)
    wait = (case.query or {}).get("wait")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool) and wait > WAIT_SECONDS:
        case.query["wait"] = WAIT_SECONDS
    return case


def _call(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}, "base_url": BASE_URL}


def _sent_to_acme(response: Any) -> None:
    """The WSGI transport takes its host from ``base_url`` only: a request that went elsewhere
    would be answered by the public host's 404 and prove nothing."""
    assert response.request.url.startswith(f"{BASE_URL}/"), response.request.url


@schema.parametrize()
@HYPOTHESIS
def test_every_operation_answers_as_documented(case: Any, cast_tokens: dict[str, str]) -> None:
    """Each generated request is sent as the admin, then as the viewer."""
    checks = CHECKS
    if case.operation.label not in VALID_MAY_BE_REFUSED:
        checks = [*CHECKS, openapi_checks.positive_data_acceptance]
    _prepared(case)
    for role in ("admin", "viewer"):
        _sent_to_acme(case.call_and_validate(checks=checks, **_call(cast_tokens[role])))


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_stateful_sequences_answer_as_documented(role: str, cast_tokens: dict[str, str]) -> None:
    call = _call(cast_tokens[role])

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            _prepared(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return call

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            _sent_to_acme(response)
            case.validate_response(response, checks=CHECKS, headers=call["headers"], transport_kwargs=call)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
