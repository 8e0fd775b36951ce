"""A command run on a database that was never migrated says so, instead of a traceback. The
database is a fresh, empty one on the shared server, dropped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parents[2]
NOT_MIGRATED = "the database is not migrated: run `make migrate`"


def _server(dbname: str) -> str:
    """A URL of the test server with this process's login (one that may create databases)."""
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{dbname}"


@pytest.fixture(scope="module")
def empty_database_url() -> Iterator[str]:
    name = f"vigil_unmigrated_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_server("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _server(name)
    finally:
        with psycopg.connect(_server("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": database_url, "DATABASE_OWNER_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_provisioning_before_migrations_says_to_migrate_and_writes_nothing(empty_database_url: str) -> None:
    out = manage(
        empty_database_url,
        "provision_tenant",
        "--name",
        "Globex",
        "--domain",
        "globex.localhost",
        "--admin-email",
        "ops@globex.example",
    )
    assert out.returncode == 1
    assert NOT_MIGRATED in out.stderr
    assert "Traceback" not in out.stderr
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_listing_tenants_before_migrations_says_to_migrate(empty_database_url: str) -> None:
    out = manage(empty_database_url, "list_tenants")
    assert out.returncode == 1
    assert NOT_MIGRATED in out.stderr and "Traceback" not in out.stderr
