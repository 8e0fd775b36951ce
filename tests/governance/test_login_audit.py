"""Failed logins are counted per source in Redis; the audit chain gets the first failure of a
window and one burst event, so guessing passwords cannot grow the chain without limit."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from django.conf import LazySettings
from django.test import Client

from config.connection import connection
from governance.receivers import LOGIN_BURST_THRESHOLD, LOGIN_FAILURE_WINDOW_SECONDS, _counters, login_failures_count
from tenants.models import Tenant
from tests.conftest import ALICE, PASSWORD

from .conftest import chain_head, events_after

WRONG_PASSWORD = "not-the-password-7351"


def _source_client() -> tuple[Client, str]:
    """A client from an address of its own, so that no other test shares its counter."""
    ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    return Client(HTTP_HOST="acme.localhost", REMOTE_ADDR=ip), ip


def _head(tenant: Tenant) -> int:
    connection.set_tenant(tenant)
    seq = chain_head()[0]
    connection.set_schema_to_public()
    return seq


def _fail(client: Client, username: str = ALICE, times: int = 1) -> None:
    for _ in range(times):
        response = client.post("/admin/login/?next=/admin/", {"username": username, "password": WRONG_PASSWORD})
        assert response.status_code == 200 and "_auth_user_id" not in client.session


@pytest.fixture
def redis_down(settings: LazySettings) -> Iterator[None]:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    _counters.cache_clear()
    yield
    _counters.cache_clear()


def test_thirty_failed_logins_write_two_audit_events_and_all_thirty_are_counted(acme: Tenant) -> None:
    client, ip = _source_client()
    start = _head(acme)

    _fail(client, times=30)

    connection.set_tenant(acme)
    first, burst = events_after(start)
    assert (first.verb, first.actor_label, first.data) == ("auth.login_failed", ALICE, {"username": ALICE, "ip": ip})
    assert (burst.verb, burst.actor_label) == ("auth.login_failed_burst", ALICE)
    assert burst.data == {
        "username": ALICE,
        "ip": ip,
        "count": LOGIN_BURST_THRESHOLD,
        "window_seconds": LOGIN_FAILURE_WINDOW_SECONDS,
    }
    assert WRONG_PASSWORD not in first.body + burst.body
    assert login_failures_count(ip=ip, username=ALICE) == 30


def test_each_source_is_counted_on_its_own(acme: Tenant) -> None:
    client, ip = _source_client()
    other, other_ip = _source_client()
    start = _head(acme)

    _fail(client, times=2)
    _fail(client, username="nobody@acme.example")
    _fail(other)

    connection.set_tenant(acme)
    assert [(e.verb, e.data["username"], e.data["ip"]) for e in events_after(start)] == [
        ("auth.login_failed", ALICE, ip),
        ("auth.login_failed", "nobody@acme.example", ip),
        ("auth.login_failed", ALICE, other_ip),
    ]
    assert (login_failures_count(ip=ip, username=ALICE), login_failures_count(ip=other_ip, username=ALICE)) == (2, 1)
    assert login_failures_count(ip=ip, username="NOBODY@acme.example") == 1  # usernames compare case-blind


def test_a_sign_in_after_failures_is_still_audited(acme: Tenant) -> None:
    client, _ = _source_client()
    start = _head(acme)

    _fail(client, times=LOGIN_BURST_THRESHOLD + 2)
    response = client.post("/admin/login/?next=/admin/", {"username": ALICE, "password": PASSWORD})

    assert response.status_code == 302
    connection.set_tenant(acme)
    assert [e.verb for e in events_after(start)] == [
        "auth.login_failed",
        "auth.login_failed_burst",
        "auth.login_succeeded",
    ]


def test_without_redis_every_failed_login_is_audited(acme: Tenant, redis_down: None) -> None:
    client, ip = _source_client()
    start = _head(acme)

    _fail(client, times=3)

    connection.set_tenant(acme)
    assert [(e.verb, e.data["ip"]) for e in events_after(start)] == [("auth.login_failed", ip)] * 3
