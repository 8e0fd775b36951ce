"""Outside development mode, unsafe settings refuse to start; safe ones pass
`manage.py check --deploy` with no warning. Each case runs in a process of its own, with a
production environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import LazySettings

from tenants.services import provision_request_build, tenant_provision

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET = "k3V9-production-secret-for-tests-only-7Qx2Lm8Rt4Wz6Yb1Nc5Hd0Jf"
CREDENTIALS_KEY = "bXlaS0pHZ2ZBa3FwVHR4d1hYbEh5eVNsV1Fxb1JkVGQ="
SHOW_SETTINGS = (
    "import json, config.settings as s; print(json.dumps({name: getattr(s, name) for name in ["
    "'DEBUG', 'ALLOWED_HOSTS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', "
    "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_PROXY_SSL_HEADER', "
    "'CSRF_TRUSTED_ORIGINS', 'VIGIL_PUBLIC_SCHEME', 'VIGIL_PUBLIC_PORT']}))"
)


SECURITY_VARIABLES = (
    "VIGIL_ENV",
    "VIGIL_DEBUG",
    "VIGIL_SECRET_KEY",
    "VIGIL_CREDENTIALS_KEY",
    "VIGIL_ALLOWED_HOSTS",
    "VIGIL_PUBLIC_",
    "VIGIL_HTTP_PORT",
    "VIGIL_SECURE_COOKIES",
    "VIGIL_SSL_REDIRECT",
    "VIGIL_HSTS_",
    "VIGIL_PROXY_SSL_HEADER",
    "VIGIL_CSRF_TRUSTED_ORIGINS",
    # Set by the browser tests for their own process; never in production.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def production_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment without the security settings, plus a safe production set;
    an override of None removes that variable."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(SECURITY_VARIABLES)}
    env.update(
        {
            "VIGIL_ENV": "production",
            "VIGIL_SECRET_KEY": SECRET,
            "VIGIL_CREDENTIALS_KEY": CREDENTIALS_KEY,
            "VIGIL_PUBLIC_DOMAIN": "vigil.example.com",
        }
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def production_settings(**overrides: str | None) -> dict[str, Any]:
    out = run(["-c", SHOW_SETTINGS], production_env(**overrides))
    assert out.returncode == 0, out.stderr[-3000:]
    settings: dict[str, Any] = json.loads(out.stdout)
    return settings


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"VIGIL_SECRET_KEY": None}, "VIGIL_SECRET_KEY is not set"),
        ({"VIGIL_ALLOWED_HOSTS": "*"}, "VIGIL_ALLOWED_HOSTS contains '*'"),
        ({"VIGIL_ALLOWED_HOSTS": "vigil.example.com,*"}, "VIGIL_ALLOWED_HOSTS contains '*'"),
        ({"VIGIL_PUBLIC_DOMAIN": None}, "VIGIL_PUBLIC_DOMAIN is 'localhost'"),
        ({"VIGIL_PUBLIC_DOMAIN": "localhost"}, "VIGIL_PUBLIC_DOMAIN is 'localhost'"),
        ({"VIGIL_DEBUG": "true"}, "VIGIL_DEBUG is on"),
        ({"VIGIL_CREDENTIALS_KEY": None}, "VIGIL_CREDENTIALS_KEY is not set"),
        ({"VIGIL_ENV": None, "VIGIL_SECRET_KEY": None}, "VIGIL_SECRET_KEY is not set"),
    ],
)
def test_an_unsafe_production_setting_refuses_to_start_naming_it(overrides: dict[str, str | None], named: str) -> None:
    out = run(["manage.py", "check"], production_env(**overrides))
    assert out.returncode == 1
    assert named in out.stderr
    assert "VIGIL_ENV=development" in out.stderr and "Traceback" not in out.stderr


def test_an_unknown_vigil_env_is_refused() -> None:
    out = run(["manage.py", "check"], production_env(VIGIL_ENV="dev"))
    assert out.returncode == 1
    assert "VIGIL_ENV must be 'production' or 'development', not 'dev'" in out.stderr


def test_development_mode_starts_with_the_local_defaults() -> None:
    settings = production_settings(VIGIL_ENV="development", VIGIL_SECRET_KEY=None, VIGIL_PUBLIC_DOMAIN=None)
    assert settings["ALLOWED_HOSTS"] == ["*"]
    assert (
        settings["VIGIL_PUBLIC_SCHEME"],
        settings["SESSION_COOKIE_SECURE"],
        settings["SECURE_SSL_REDIRECT"],
        settings["SECURE_HSTS_SECONDS"],
    ) == ("http", False, False, 0)


def test_production_defaults_are_https_with_secure_cookies_and_hsts() -> None:
    settings = production_settings()
    assert settings["ALLOWED_HOSTS"] == ["vigil.example.com", ".vigil.example.com"]
    assert (settings["VIGIL_PUBLIC_SCHEME"], settings["VIGIL_PUBLIC_PORT"]) == ("https", 443)
    assert settings["SESSION_COOKIE_SECURE"] and settings["CSRF_COOKIE_SECURE"] and settings["SECURE_SSL_REDIRECT"]
    assert settings["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600 and settings["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert settings["CSRF_TRUSTED_ORIGINS"] == ["https://vigil.example.com", "https://*.vigil.example.com"]
    assert settings["SECURE_PROXY_SSL_HEADER"] is None


def test_the_proxy_header_and_trusted_origins_come_from_the_environment() -> None:
    settings = production_settings(
        VIGIL_PROXY_SSL_HEADER="X-Forwarded-Proto",
        VIGIL_CSRF_TRUSTED_ORIGINS="https://support.acme.example",
        VIGIL_HSTS_SECONDS="600",
    )
    assert settings["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings["CSRF_TRUSTED_ORIGINS"] == ["https://support.acme.example"]
    assert settings["SECURE_HSTS_SECONDS"] == 600


def test_check_deploy_passes_with_production_settings() -> None:
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout


def test_provisioning_prints_invitation_links_with_the_public_scheme(db: None, settings: LazySettings) -> None:
    settings.VIGIL_PUBLIC_SCHEME, settings.VIGIL_PUBLIC_PORT = "https", 443
    request = provision_request_build(
        name="Gamma", domain="gamma.localhost", tier="starter", admin_email="gina@gamma.example", admin_password=None
    )
    result = tenant_provision(request=request)
    assert result.invitation_url is not None
    link = urlsplit(result.invitation_url)
    assert (link.scheme, link.netloc) == ("https", "gamma.localhost")
    assert link.path.startswith("/invite/")
