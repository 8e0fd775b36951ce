"""The real OpenID Connect provider of the single sign-on tests (config/oidc_provider.py: the
npm package oidc-provider run by node) and a person signing in at it, driven over HTTP."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

from config.oidc_provider import DEMO_PASSWORD, ProviderConfig, free_port, provider_start, provider_stop
from tests.conftest import PASSWORD

ACME_TID, BETA_TID = "acme-org", "beta-org"
ACME_CLIENT, BETA_CLIENT = "vigil-acme", "vigil-beta"
SECRETS = {ACME_CLIENT: "acme-client-secret", BETA_CLIENT: "beta-client-secret"}
ADA = "ada@acme.example"  # acme's admin at the provider
REMY = "remy@acme.example"  # acme's reviewer
BERT = "bert@beta.example"  # beta's admin
MAPPING = {"groups": {"vigil-admins": "admin", "vigil-reviewers": "reviewer"}}
SCOPES = "openid email profile groups tid"


@dataclass
class RunningProvider:
    issuer: str
    callbacks: dict[str, str]  # host -> redirect URI


def provider_users() -> list[dict[str, Any]]:
    return [
        {"login": ADA, "email": ADA, "name": "Ada", "groups": ["vigil-admins"], "tid": ACME_TID},
        {"login": REMY, "email": REMY, "name": "Remy", "groups": ["vigil-reviewers", "staff"], "tid": ACME_TID},
        {"login": BERT, "email": BERT, "name": "Bert", "groups": ["vigil-admins"], "tid": BETA_TID},
    ]


@contextmanager
def running_provider(workdir: Path, *, web_port: int | None = None) -> Iterator[RunningProvider]:
    """The provider with a client for acme and one for beta. Acme's client also accepts beta's
    callback: the provider would hand acme's tokens to beta's host, so only Vigil's tid check
    stands between them."""
    suffix = f":{web_port}" if web_port else ""
    callbacks = {host: f"http://{host}{suffix}/oidc/callback/" for host in ("acme.localhost", "beta.localhost")}
    config = ProviderConfig(
        port=free_port(),
        clients=[
            {
                "client_id": ACME_CLIENT,
                "client_secret": SECRETS[ACME_CLIENT],
                "redirect_uris": [callbacks["acme.localhost"], callbacks["beta.localhost"]],
            },
            {
                "client_id": BETA_CLIENT,
                "client_secret": SECRETS[BETA_CLIENT],
                "redirect_uris": [callbacks["beta.localhost"]],
            },
        ],
        users=[{**user, "password": PASSWORD} for user in provider_users()],
    )
    proc = provider_start(config, workdir=workdir)
    try:
        yield RunningProvider(issuer=config.issuer, callbacks=callbacks)
    finally:
        provider_stop(proc)


def sign_in_at_provider(authorize_url: str, *, login: str, password: str | None = None) -> str:
    """A person at the provider's login page: the URL the provider sends the browser back to
    (the client's callback with the code and state)."""
    session = requests.Session()
    response = session.get(authorize_url, allow_redirects=False, timeout=10)
    for _ in range(10):
        location = response.headers.get("Location")
        if response.status_code in (302, 303) and location:
            url = urljoin(response.url, location)
            if "/oidc/callback/" in url:
                return url
            response = session.get(url, allow_redirects=False, timeout=10)
            continue
        form = re.search(r'<form method="post" action="([^"]+)"', response.text)
        if response.status_code != 200 or form is None:
            raise AssertionError(f"unexpected answer from the provider: {response.status_code} {response.text[:300]}")
        action = urljoin(response.url, unescape(form.group(1)))
        data = {"login": login, "password": password or (DEMO_PASSWORD if login.endswith(".localhost") else PASSWORD)}
        response = session.post(action, data=data, allow_redirects=False, timeout=10)
        if response.status_code == 200:
            raise AssertionError(f"the provider refused the sign-in: {response.text[:300]}")
    raise AssertionError("the provider never sent the browser back")


def provider_tokens(issuer: str, *, client_id: str, redirect_uri: str, login: str) -> dict[str, Any]:
    """The tokens a client gets for ``login`` by the authorization code flow (as a CLI would)."""
    document = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
    }
    back = sign_in_at_provider(f"{document['authorization_endpoint']}?{urlencode(params)}", login=login)
    code = parse_qs(urlsplit(back).query)["code"][0]
    response = requests.post(
        document["token_endpoint"],
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        auth=(client_id, SECRETS[client_id]),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens
