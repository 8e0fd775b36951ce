"""Each tenant's API requests are counted per minute in Redis against its tier's
requests_per_minute: over it, 429 with Retry-After and the limit named; other tenants and
pages outside the API are not affected; without Redis, requests pass."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import LazySettings
from django.contrib.auth.models import User
from django.test import Client

from config.connection import connection
from governance import throttles
from tenants.models import Tenant
from tests.conftest import ALICE, BOB


def _limit(tenant: Tenant, per_minute: int) -> None:
    tenant.limit_overrides = {**tenant.limit_overrides, "requests_per_minute": per_minute}
    tenant.save(update_fields=["limit_overrides"])


def _signed_in(tenant: Tenant, username: str, host: str) -> Client:
    connection.set_tenant(tenant)
    client = Client(HTTP_HOST=host)
    client.force_login(User.objects.get(username=username))
    connection.set_schema_to_public()
    return client


@pytest.fixture
def redis_down(settings: LazySettings) -> Iterator[None]:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    throttles._redis.cache_clear()
    yield
    throttles._redis.cache_clear()
    throttles._redis_down_until = 0.0


def test_over_the_tiers_requests_per_minute_the_api_answers_429_naming_the_limit(acme: Tenant, beta: Tenant) -> None:
    _limit(acme, 5)
    alice = _signed_in(acme, ALICE, "acme.localhost")

    statuses = [alice.get("/api/v1/agents/").status_code for _ in range(5)]
    refused = alice.get("/api/v1/agents/")

    assert statuses == [200] * 5
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "throttled"
    assert body["extra"]["limit"] == "requests_per_minute" and body["extra"]["value"] == 5
    assert body["extra"]["tier"] == "starter" and "5 API requests a minute" in body["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 60 and int(refused["Retry-After"]) == body["extra"]["retry_after"]
    # Every API path counts; the admin does not, nor does another tenant.
    assert alice.post("/api/v1/live/ticket/").status_code == 429
    assert alice.get("/admin/").status_code == 200
    assert _signed_in(beta, BOB, "beta.localhost").get("/api/v1/agents/").status_code == 200


def test_each_api_request_is_counted_once(acme: Tenant) -> None:
    alice = _signed_in(acme, ALICE, "acme.localhost")
    assert alice.get("/api/v1/agents/").status_code == 200

    connection.set_tenant(acme)
    assert throttles.request_counted(schema="acme") == 2  # the request above and this count
    connection.set_schema_to_public()


def test_the_count_starts_again_each_minute(acme: Tenant) -> None:
    minute = 29_000_000 * 60.0

    counts = [throttles.request_counted(schema="acme", now=minute + s) for s in (0, 30, 59.9)]
    next_minute = throttles.request_counted(schema="acme", now=minute + 60)

    assert (counts, next_minute) == ([1, 2, 3], 1)


def test_without_redis_requests_pass(acme: Tenant, redis_down: None) -> None:
    _limit(acme, 1)
    alice = _signed_in(acme, ALICE, "acme.localhost")

    assert [alice.get("/api/v1/agents/").status_code for _ in range(3)] == [200, 200, 200]
    assert throttles.request_counted(schema="acme") is None


def test_requests_that_do_not_authenticate_do_not_use_up_the_tenants_quota(acme: Tenant) -> None:
    _limit(acme, 3)
    forged = Client(HTTP_HOST="acme.localhost", HTTP_AUTHORIZATION="Bearer vgl_00000000_forged")
    assert [forged.get("/api/v1/agents/").status_code for _ in range(6)] == [401] * 6
    # Requests without credentials count per client address, with the tenant's limit.
    stranger = Client(HTTP_HOST="acme.localhost")
    statuses = [stranger.post("/api/v1/auth/token/", {}, content_type="application/json").status_code for _ in range(4)]
    assert 429 not in statuses[:3] and statuses[3] == 429

    alice = _signed_in(acme, ALICE, "acme.localhost")
    assert [alice.get("/api/v1/agents/").status_code for _ in range(3)] == [200] * 3
    assert alice.get("/api/v1/agents/").status_code == 429
