"""Single sign-on as a person uses it, in a real browser against a real server and a real
OpenID Connect provider (the npm oidc-provider run by node): acme's login page offers "Log
in with SSO", the person signs in at the provider and lands in acme's admin with the role
their groups map to; then a client of theirs calls the API with the provider's access token,
which acme accepts and beta refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from django.contrib.auth.models import User

from config.connection import connection
from config.oidc_provider import free_port
from governance import access
from governance.models import SsoProvider
from governance.sso import sso_provider_save
from tenants.models import Tenant
from tests.conftest import ALICE, BASE_DIR
from tests.governance.sso_support import (
    ACME_CLIENT,
    ACME_TID,
    ADA,
    MAPPING,
    SECRETS,
    RunningProvider,
    provider_tokens,
    running_provider,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sso_web_server(celery_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A uvicorn server like the session's, whose operator allows the provider on 127.0.0.1."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("sso-web") / "web.log"
    env = {**celery_env, "VIGIL_HTTP_PORT": str(port), "VIGIL_EGRESS_ALLOW": "127.0.0.1"}
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "1", "--no-access-log"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"web server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    yield port
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def idp(sso_web_server: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    with running_provider(tmp_path_factory.mktemp("idp"), web_port=sso_web_server) as provider:
        yield provider


@pytest.fixture
def acme_sso(committed: None, idp: RunningProvider, settings: object) -> Iterator[SsoProvider]:
    """Acme's provider, committed for the server to see; removed afterwards with the users it made."""
    settings.VIGIL_EGRESS_ALLOW = ["127.0.0.1"]  # type: ignore[attr-defined]
    acme = Tenant.objects.get(schema_name="acme")
    connection.set_tenant(acme)
    provider = sso_provider_save(
        provider=SsoProvider(
            name="Acme SSO", issuer=idp.issuer, client_id=ACME_CLIENT, tid=ACME_TID, role_mapping=MAPPING
        ),
        client_secret=SECRETS[ACME_CLIENT],
        actor=User.objects.get(username=ALICE),
    )
    connection.set_schema_to_public()
    yield provider
    connection.set_tenant(acme)
    SsoProvider.objects.filter(pk=provider.pk).delete()
    User.objects.filter(username=ADA).delete()
    connection.set_schema_to_public()


def test_a_person_logs_in_with_sso_lands_as_their_mapped_role_and_calls_the_api_with_the_access_token(
    acme_sso: SsoProvider, idp: RunningProvider, sso_web_server: int, browser: Browser, tmp_path: Path
) -> None:
    base = f"http://acme.localhost:{sso_web_server}"
    page = browser.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{base}/admin/login/")
        page.screenshot(path=str(tmp_path / "login.png"))
        page.click("text=Log in with Acme SSO")
        page.wait_for_selector("#login")
        assert page.url.startswith(idp.issuer)
        page.fill("#login", ADA)
        page.fill("#password", "not-the-password")
        page.click("#sign-in")
        page.wait_for_selector("[role=alert]")
        page.fill("#login", ADA)
        page.fill("#password", "correct-horse-battery-9")
        page.click("#sign-in")
        page.wait_for_url(f"{base}/admin/")
        page.wait_for_selector("#user-tools")
        page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
        assert "WELCOME, ADA." in page.inner_text("#user-tools").upper()  # the name the provider gave
        page.goto(f"{base}/admin/auth/user/")  # admins manage users
        assert page.locator("#result_list").count() == 1
    finally:
        page.close()

    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    ada = User.objects.get(username=ADA)
    assert access.roles_of(ada) == {access.Role.ADMIN} and not ada.has_usable_password()
    connection.set_schema_to_public()

    tokens = provider_tokens(idp.issuer, client_id=ACME_CLIENT, redirect_uri=idp.callbacks["acme.localhost"], login=ADA)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = requests.get(
        f"http://127.0.0.1:{sso_web_server}/api/v1/auth/me/", headers={**bearer, "Host": "acme.localhost"}, timeout=10
    )
    assert me.status_code == 200, me.text
    assert (me.json()["username"], me.json()["tenant"]["schema"], me.json()["roles"]) == (ADA, "acme", ["admin"])
    on_beta = requests.get(
        f"http://127.0.0.1:{sso_web_server}/api/v1/auth/me/", headers={**bearer, "Host": "beta.localhost"}, timeout=10
    )
    assert on_beta.status_code == 401 and on_beta.json()["code"] in ("authentication_failed", "not_authenticated")
