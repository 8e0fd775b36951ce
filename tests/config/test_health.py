from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import LazySettings
from django.test import Client

BASE_DIR = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_on_any_host_without_touching_the_database() -> None:
    response = Client(HTTP_HOST="no-such-tenant.example").get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_database_redis_and_broker_answer() -> None:
    response = Client(HTTP_HOST="10.0.0.1").get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok", "broker": "ok", "status": "ok"}


@pytest.mark.django_db
def test_readyz_names_redis_when_it_is_unreachable(settings: LazySettings) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["redis"] == "failing" and body["database"] == "ok"
    assert "ConnectionError" in body["failing"]["redis"]


@pytest.mark.django_db
def test_readyz_names_the_broker_when_it_is_unreachable(settings: LazySettings) -> None:
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert (body["broker"], body["redis"], body["database"]) == ("failing", "ok", "ok")
    assert "Connection refused" in body["failing"]["broker"]


@pytest.mark.django_db
def test_readyz_checks_a_broker_that_is_not_redis(settings: LazySettings) -> None:
    settings.CELERY_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"] == "failing"


def test_readyz_names_the_database_when_it_is_unreachable() -> None:
    # A separate process, so that this test's own connection is not the one we break.
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{_closed_port()}/vigil"}
    code = (
        "import django; django.setup(); import json; from config.health import readiness; "
        "print(json.dumps(readiness()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    status, body = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == 503
    assert body["database"] == "failing" and body["redis"] == "ok"
    assert "OperationalError" in body["failing"]["database"]
