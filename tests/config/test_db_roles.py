"""Two logins (config/dbroles.py): web and workers are the application role, migrations and
schema changes the owner. This process is the owner (tests/conftest.py); these tests put the
application role where production has it: on this process's connection, in a real worker,
in a real ``manage.py``. Then the embedded server's part (config/services.py), on servers of
the tests' own: the roles, their default privileges, and a data folder made before them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
import pytest
from celery import current_app
from django.conf import settings
from django.db import transaction

from config import services
from config.connection import connection
from config.dbroles import OwnerConnectionError, owner_connection
from config.localservices import APP_ROLE, OWNER_ROLE, LocalServices
from tenants.models import Tenant, TenantStatus
from tenants.selectors import spare_count
from tenants.services import spare_create
from tests.agents.helpers_execution import StartWorker, only_our_workers, wait_until, worker_start  # noqa: F401
from tests.conftest import PASSWORD, database_url

BASE_DIR = Path(__file__).resolve().parents[2]
APP_USER = dj_database_url.parse(settings.DATABASE_URL)["USER"]
OWNER_USER = settings.DATABASE_OWNER["USER"]

two_roles = pytest.mark.skipif(APP_USER == OWNER_USER, reason="one role does both: nothing to separate")


def current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return str(cursor.fetchone()[0])


def schema_owner(schema: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", [schema])
        row = cursor.fetchone()
    return str(row[0]) if row else ""


def database_logins() -> set[str]:
    """The roles of the other sessions on the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def as_app(django_db_setup: None, committed: None) -> Iterator[None]:
    """This thread's connection logs in as the application role, as a web or worker process does."""
    app = dj_database_url.parse(settings.DATABASE_URL)
    saved = connection.settings_dict
    connection.close()
    connection.settings_dict = {**saved, **{key: app[key] for key in ("USER", "PASSWORD", "HOST", "PORT")}}
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict = saved


@two_roles
def test_owner_connection_logs_in_as_the_owner_for_its_block_only(as_app: None) -> None:
    assert current_user() == APP_USER
    with owner_connection():
        assert current_user() == OWNER_USER
        with owner_connection():  # nested: nothing changes
            assert current_user() == OWNER_USER
    assert current_user() == APP_USER


@two_roles
def test_a_schema_change_inside_an_application_transaction_is_refused_and_writes_nothing(as_app: None) -> None:
    spares = spare_count()
    with transaction.atomic(), pytest.raises(OwnerConnectionError, match="outside any transaction"):
        spare_create()
    assert spare_count() == spares
    assert current_user() == APP_USER


@two_roles
@pytest.mark.slow
def test_a_worker_logs_in_as_the_application_role_and_refills_the_pool_as_the_owner(
    committed: None,
    worker_start: StartWorker,  # noqa: F811 (a fixture, imported so that pytest finds it)
) -> None:
    target = spare_count() + 1
    worker_start(env={"VIGIL_SPARE_POOL_SIZE": str(target)}, concurrency=1)
    current_app.send_task("tenants.tasks.spare_pool_refill")
    wait_until(lambda: spare_count() == target, what=f"the pool to hold {target} spares", timeout=60)
    newest = Tenant.objects.filter(status=TenantStatus.SPARE).order_by("-created_at", "-pk").first()
    assert newest is not None
    assert schema_owner(newest.schema_name) == OWNER_USER

    # The refill's owner login ended with it; the next task logs in as the application role.
    current_app.send_task("agents.sweep_ack_deadlines")
    assert wait_until(lambda: database_logins() == {APP_USER}, what="the worker's application login")


def _manage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "DATABASE_OWNER_URL": database_url(owner=True)}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


@two_roles
@pytest.mark.slow
def test_the_operators_commands_provision_and_delete_a_tenant_as_the_owner(
    django_db_setup: None, committed: None
) -> None:
    schema = f"roles_{uuid.uuid4().hex[:8]}"
    domain = f"{schema.replace('_', '-')}.localhost"
    done = _manage(
        "provision_tenant",
        "--name",
        "Roles",
        "--domain",
        domain,
        "--schema",
        schema,
        "--admin-email",
        f"admin@{domain}",
        "--admin-password",
        PASSWORD,
    )
    assert done.returncode == 0, done.stderr
    assert schema_owner(schema) == OWNER_USER
    assert Tenant.objects.get(schema_name=schema).status == TenantStatus.ACTIVE

    done = _manage("delete_tenant", schema, "--confirm", schema)
    assert done.returncode == 0, done.stderr
    assert schema_owner(schema) == ""
    assert not Tenant.objects.filter(schema_name=schema).exists()


def test_an_owner_url_naming_another_database_is_refused_at_start() -> None:
    env = {**os.environ, "DATABASE_URL": database_url(), "DATABASE_OWNER_URL": f"{database_url(owner=True)}_other"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "DATABASE_OWNER_URL names database" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------ the embedded server's roles
@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServices]:
    """A PostgreSQL server of this test's own, started by ``config.services``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    svc = LocalServices(run_dir=tmp_path / ".run", pg_port=port, redis_port=0)
    services.start_postgres(svc, fast=True)
    try:
        yield svc
    finally:
        services.stop_postgres(svc)
        pg_dir = (svc.run_dir / "pg").resolve()
        # As root the data may sit in a folder of its own under /var/lib/vigil (see _pg_dir).
        shutil.rmtree(pg_dir.parent if pg_dir.parent.parent == services.SHARED_PG_ROOT else pg_dir, ignore_errors=True)


def superuser_sql(svc: LocalServices, dbname: str, *statements: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(
        host="127.0.0.1", port=svc.pg_port, user=services.SUPERUSER, dbname=dbname, autocommit=True
    ) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows


@pytest.mark.slow
def test_starting_the_server_hands_what_the_superuser_made_before_the_roles_to_the_owner(
    own_server: LocalServices,
) -> None:
    # What a data folder made before the roles existed holds: everything the superuser's.
    superuser_sql(own_server, "postgres", "CREATE DATABASE legacy")
    superuser_sql(
        own_server,
        "vigil",
        "CREATE SCHEMA acme",
        "CREATE TABLE acme.agents_agent (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)",
        "CREATE TABLE acme.governance_auditevent (seq bigserial PRIMARY KEY, body text)",
        "CREATE SEQUENCE acme.counter",
        "CREATE FUNCTION acme.governance_audit_append() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    )

    services.start_postgres(own_server, fast=True)
    services.start_postgres(own_server, fast=True)  # idempotent

    owners = superuser_sql(
        own_server,
        "vigil",
        """
        SELECT 'schema', pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'acme'
        UNION ALL SELECT relname, pg_get_userbyid(relowner) FROM pg_class
            WHERE relnamespace = 'acme'::regnamespace AND relkind IN ('r', 'S')
        UNION ALL SELECT proname, pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = 'acme'::regnamespace""",
    )
    assert {owner for _, owner in owners} == {OWNER_ROLE}
    assert len(owners) == 7  # the schema, 2 tables, 3 sequences, the function
    grants = superuser_sql(
        own_server,
        "vigil",
        f"""
        SELECT has_table_privilege('{APP_ROLE}', 'acme.agents_agent', 'SELECT, INSERT, UPDATE, DELETE'),
               has_table_privilege('{APP_ROLE}', 'acme.governance_auditevent', 'SELECT'),
               has_table_privilege('{APP_ROLE}', 'acme.governance_auditevent', 'INSERT, UPDATE, DELETE, TRUNCATE'),
               has_sequence_privilege('{APP_ROLE}', 'acme.counter', 'USAGE'),
               has_schema_privilege('{APP_ROLE}', 'acme', 'USAGE'),
               has_schema_privilege('{APP_ROLE}', 'acme', 'CREATE')""",
    )
    assert grants == [(True, True, False, True, True, False)]
    databases = superuser_sql(
        own_server,
        "postgres",
        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
        "WHERE datname IN ('vigil', 'legacy') ORDER BY datname",
    )
    assert databases == [("legacy", OWNER_ROLE), ("vigil", OWNER_ROLE)]


@pytest.mark.slow
def test_a_database_the_owner_creates_gives_the_application_role_rows_only(own_server: LocalServices) -> None:
    owner = f"postgres://{OWNER_ROLE}@127.0.0.1:{own_server.pg_port}"
    with psycopg.connect(f"{owner}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE made_by_owner")
    with psycopg.connect(f"{owner}/made_by_owner", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")  # there already: no superuser needed
        conn.execute("CREATE SCHEMA t")
        conn.execute("CREATE TABLE t.item (id bigint GENERATED BY DEFAULT AS IDENTITY, v vector(2))")
    with psycopg.connect(f"postgres://{APP_ROLE}@127.0.0.1:{own_server.pg_port}/made_by_owner") as conn:
        assert conn.execute("INSERT INTO t.item (v) VALUES ('[1,2]') RETURNING id").fetchone() == (1,)
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of table item"):
            conn.execute("ALTER TABLE t.item ADD COLUMN w int")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema t"):
            conn.execute("CREATE TABLE t.other (id int)")
