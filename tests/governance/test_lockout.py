"""Repeated failed sign-ins lock the account, or the client address, of one tenant: on the
token endpoint (429 with Retry-After) and on the admin login, the right password included,
until the lock ends by itself or an admin lifts it (audited)."""

from __future__ import annotations

import random
import time
from io import StringIO

import pytest
from django.conf import LazySettings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from config.connection import connection
from governance.models import AuditEvent
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE, BOB, PASSWORD, RITA

from .conftest import chain_head, events_after

WRONG = "not-the-password-1187"


@pytest.fixture(autouse=True)
def _small_limits(settings: LazySettings) -> None:
    settings.VIGIL_LOCKOUT_FAILURES = 3
    settings.VIGIL_LOCKOUT_IP_FAILURES = 5


def _client(host: str = "acme.localhost") -> Client:
    ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    return Client(HTTP_HOST=host, REMOTE_ADDR=ip)


def _token(client: Client, username: str, password: str) -> tuple[int, dict[str, object], str]:
    response = client.post("/api/v1/auth/token/", {"username": username, "password": password}, "application/json")
    return response.status_code, response.json(), response.get("Retry-After", "")


def test_the_token_endpoint_locks_an_account_after_repeated_failures(acme: Tenant) -> None:
    client = _client()

    statuses = [_token(client, RITA, WRONG)[0] for _ in range(3)]
    status, body, retry_after = _token(client, RITA, PASSWORD)

    assert statuses == [401, 401, 429]
    assert (status, body["code"]) == (429, "locked_out")
    assert body["extra"] == {"limit": "VIGIL_LOCKOUT_FAILURES", "retry_after": int(retry_after)}
    assert 890 <= int(retry_after) <= 900
    assert "token" not in body
    # From another address too: it is the account that is locked. Another account is not.
    assert _token(_client(), RITA, PASSWORD)[0] == 429
    assert _token(client, ALICE, PASSWORD)[0] == 200


def test_an_address_that_fails_for_many_accounts_is_locked_for_all(acme: Tenant) -> None:
    client = _client()

    for i in range(5):
        assert _token(client, f"nobody-{i}@acme.example", WRONG)[0] in (401, 429)
    status, body, _ = _token(client, ALICE, PASSWORD)

    assert (status, body["extra"]["limit"]) == (429, "VIGIL_LOCKOUT_IP_FAILURES")  # type: ignore[index]
    assert _token(_client(), ALICE, PASSWORD)[0] == 200


def test_the_admin_login_is_locked_too_and_says_so(acme: Tenant) -> None:
    client = _client()
    for _ in range(3):
        client.post("/admin/login/?next=/admin/", {"username": RITA, "password": WRONG})

    response = client.post("/admin/login/?next=/admin/", {"username": RITA, "password": PASSWORD})

    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "Too many failed sign-ins for this account" in response.content.decode()


def test_a_lock_is_per_tenant(acme: Tenant, beta: Tenant) -> None:
    for _ in range(3):
        _token(_client(), BOB, WRONG)  # bob is not a user of acme: acme's account "bob" is locked

    assert _token(_client(), BOB, PASSWORD)[0] == 429
    assert _token(_client("beta.localhost"), BOB, PASSWORD)[0] == 200


def test_an_admin_lifts_a_lock_over_the_api_and_it_is_audited(acme: Tenant) -> None:
    client = _client()
    for _ in range(3):
        _token(client, RITA, WRONG)
    connection.set_tenant(acme)
    start = chain_head()[0]
    admin = Client(HTTP_HOST="acme.localhost")
    admin.force_login(User.objects.get(username=ALICE))
    connection.set_schema_to_public()

    response = admin.post("/api/v1/auth/unlock/", {"username": RITA}, "application/json")

    assert response.status_code == 200 and response.json()["was_locked"] is True
    assert _token(client, RITA, PASSWORD)[0] == 200
    connection.set_tenant(acme)
    [event] = [e for e in events_after(start) if e.verb == "auth.unlocked"]
    assert (event.actor_label, event.data) == (ALICE, {"username": RITA, "ip": "", "was_locked": True})


def test_a_reviewer_may_not_lift_a_lock(acme: Tenant) -> None:
    reviewer = signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA)
    connection.set_schema_to_public()

    response = reviewer.post("/api/v1/auth/unlock/", {"username": ALICE}, "application/json")

    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


def test_an_operator_lifts_a_lock_with_the_command(acme: Tenant) -> None:
    client = _client()
    for _ in range(3):
        _token(client, RITA, WRONG)
    out = StringIO()

    call_command("unlock_account", tenant="acme", user=RITA, stdout=out)

    assert out.getvalue().strip() == f"account {RITA} of acme: unlocked"
    assert _token(client, RITA, PASSWORD)[0] == 200
    connection.set_tenant(acme)
    event = AuditEvent.objects.filter(verb="auth.unlocked").order_by("-seq").first()
    assert event is not None and event.actor_label.startswith("operator:")


def test_a_lock_ends_by_itself(acme: Tenant, settings: LazySettings) -> None:
    settings.VIGIL_LOCKOUT_SECONDS = 1
    client = _client()
    for _ in range(3):
        _token(client, RITA, WRONG)
    assert _token(client, RITA, PASSWORD)[0] == 429

    deadline = time.monotonic() + 10
    while (status := _token(client, RITA, PASSWORD)[0]) == 429 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert status == 200
