"""What an API list request asks the database: the tenant of the host remembered (and forgotten
when the tenant changes), the token read with its user's roles and grants, the count read with
the page; and the answers exactly DRF's own."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import ProgrammingError, transaction
from django.db import connection as db_connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from rest_framework import pagination as drf_pagination

from agents.api import TaskViewSet
from agents.models import Agent
from config import pagination
from config.connection import connection
from governance.roles import user_agent_scope_set
from tenants.middleware import TenantMiddleware
from tenants.models import Domain, Tenant, TenantStatus
from tenants.selectors import _by_host, tenant_for_host
from tests.agents.api_support import agent_make, task_make, token_for
from tests.conftest import ALICE, RITA


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every statement sent on the connection meanwhile (SET search_path included)."""
    sent: list[str] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append(sql)
        return execute(sql, params, many, context)

    with db_connection.execute_wrapper(record):
        yield sent


@pytest.fixture
def three_tasks(acme: Tenant) -> list[int]:
    agent = agent_make(acme, "lister")
    return [task_make(acme, agent).pk for _ in range(3)]


@pytest.fixture
def alice_token(acme: Tenant) -> Client:
    client = Client(HTTP_HOST="acme.localhost")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token_for(client, ALICE)}"
    return client


def test_a_token_list_request_costs_a_search_path_the_token_and_one_page_query(
    alice_token: Client, three_tasks: list[int]
) -> None:
    assert alice_token.get("/api/v1/tasks/").status_code == 200  # the host's tenant is now known
    with statements() as sent:
        response = alice_token.get("/api/v1/tasks/")
    assert response.status_code == 200 and response.json()["count"] == 3
    assert len(sent) == 3, sent
    assert sent[0].startswith("SET search_path") and "governance_apitoken" in sent[1]
    assert not any("tenants_domain" in sql or "COUNT(*) AS" in sql for sql in sent), sent


def test_pages_counts_links_and_refusals_are_drfs_own(
    alice_token: Client, three_tasks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = ["/api/v1/tasks/", "/api/v1/tasks/?page=2", "/api/v1/tasks/?page=3", "/api/v1/tasks/?page=last"]
    refused = ["/api/v1/tasks/?page=4"]
    monkeypatch.setattr(drf_pagination.PageNumberPagination, "page_size", 1)

    def answers() -> list[tuple[int, Any]]:
        return [(r.status_code, r.json()) for r in (alice_token.get(path) for path in paths + refused)]

    assert TaskViewSet.pagination_class is pagination.PageNumberPagination
    ours = answers()
    monkeypatch.setattr(TaskViewSet, "pagination_class", drf_pagination.PageNumberPagination)
    assert ours == answers()
    assert [body["count"] for _, body in ours[:4]] == [3, 3, 3, 3]
    assert sorted(row["id"] for _, body in ours[:3] for row in body["results"]) == sorted(three_tasks)
    assert [status for status, _ in ours[4:]] == [404]


@pytest.mark.parametrize("page", ["", "0", "000", "-1", "x", "1.5", "\u0661"])
def test_a_page_that_is_not_a_whole_number_from_1_is_a_400_naming_it(alice_token: Client, page: str) -> None:
    response = alice_token.get("/api/v1/tasks/", {"page": page})
    assert response.status_code == 400, response.content
    assert response.json()["extra"]["fields"] == {"page": ["must be a whole number from 1"]}


def test_a_page_past_the_databases_largest_offset_is_past_the_end(alice_token: Client, three_tasks: list[int]) -> None:
    for page in (str(2**62), "9" * 5000):
        response = alice_token.get("/api/v1/tasks/", {"page": page})
        assert response.status_code == 404, response.content
        assert response.json()["code"] == "not_found"


def test_an_empty_list_counts_zero_and_a_page_past_it_is_refused(alice_token: Client) -> None:
    with statements() as sent:
        empty = alice_token.get("/api/v1/tasks/")
    assert empty.status_code == 200
    assert (empty.json()["count"], empty.json()["results"], empty.json()["next"]) == (0, [], None)
    assert not any("COUNT(*) AS" in sql for sql in sent), sent
    assert alice_token.get("/api/v1/tasks/?page=2").status_code == 404


def test_a_scoped_user_on_a_token_lists_only_the_agents_granted(acme: Tenant, three_tasks: list[int]) -> None:
    connection.set_tenant(acme)
    other = task_make(acme, agent_make(acme, "elsewhere")).pk
    user_agent_scope_set(
        user=User.objects.get(username=RITA),
        grant="review_agent",
        agent_ids=[Agent.objects.get(name="lister").pk],
        actor=User.objects.get(username=ALICE),
    )
    client = Client(HTTP_HOST="acme.localhost")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token_for(client, RITA)}"
    listed = client.get("/api/v1/tasks/").json()
    assert sorted(row["id"] for row in listed["results"]) == sorted(three_tasks) and listed["count"] == 3
    assert client.get(f"/api/v1/tasks/{other}/").status_code == 404
    me = client.get("/api/v1/auth/me/").json()
    assert me["roles"] == ["reviewer"] and "review" in me["capabilities"]


def test_a_suspended_tenant_is_refused_at_once_though_its_host_was_remembered(
    acme: Tenant, alice_token: Client
) -> None:
    assert alice_token.get("/api/v1/agents/").status_code == 200
    connection.set_schema_to_public()
    tenant = Tenant.objects.get(pk=acme.pk)
    tenant.status = TenantStatus.SUSPENDED
    tenant.save(update_fields=["status"])
    refused = alice_token.get("/api/v1/agents/")
    assert refused.status_code == 403 and refused.json()["code"] == "tenant_suspended"


def test_a_removed_domain_is_unknown_at_once(acme: Tenant, alice_token: Client) -> None:
    assert alice_token.get("/api/v1/agents/").status_code == 200
    connection.set_schema_to_public()
    Domain.objects.get(domain="acme.localhost").delete()
    assert alice_token.get("/api/v1/agents/").status_code == 404


def test_a_host_whose_schema_went_away_under_this_process_is_forgotten_and_answers_404(acme: Tenant) -> None:
    """Another process deleted the tenant: this one still remembered its host, so the request's
    first query of a tenant table fails. The middleware forgets every host and answers 404 when
    the host is no tenant's any more (a host that still is one keeps the server error)."""
    with pytest.raises(ProgrammingError) as gone, transaction.atomic(), db_connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM vigil_schema_that_is_gone.agents_agent")
    middleware = TenantMiddleware(lambda request: HttpResponse())
    tenant_for_host(hostname="acme.localhost")
    assert "acme.localhost" in _by_host

    answer = middleware.process_exception(
        RequestFactory().get("/api/v1/agents/", HTTP_HOST="gone.localhost"), gone.value
    )
    assert answer is not None and answer.status_code == 404
    assert json.loads(answer.content)["code"] == "not_found"
    assert "acme.localhost" not in _by_host
    kept = middleware.process_exception(RequestFactory().get("/api/v1/agents/", HTTP_HOST="acme.localhost"), gone.value)
    assert kept is None
    assert middleware.process_exception(RequestFactory().get("/", HTTP_HOST="gone.localhost"), ValueError()) is None
