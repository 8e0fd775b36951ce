"""The application role, which web and workers log in as, reads the audit trail and appends to
it through ``governance_audit_append``, and can do nothing else to it: not even what the
table's owner could do to get past the append-only triggers.

Each test uses a connection of its own logged in as the application role, on the committed
session database, and leaves nothing behind (its appends are rolled back)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from governance.actors import Actor
from governance.hashchain import chain_hash
from governance.services import AUDIT_APPEND_CALL, audit_append_params
from tests.conftest import database_url
from tests.governance.conftest import APPEND_ONLY_TRIGGER

REFUSED = {
    "update": ("UPDATE governance_auditevent SET body = body", "permission denied for table governance_auditevent"),
    "delete": ("DELETE FROM governance_auditevent", "permission denied for table governance_auditevent"),
    "truncate": ("TRUNCATE governance_auditevent", "permission denied for table governance_auditevent"),
    "insert": (
        "INSERT INTO governance_auditevent (body, prev_hash, hash) VALUES ('{}', '', '')",
        "permission denied for table governance_auditevent",
    ),
    "disable trigger": (
        f"ALTER TABLE governance_auditevent DISABLE TRIGGER {APPEND_ONLY_TRIGGER}",
        "must be owner of table governance_auditevent",
    ),
    "disable all triggers": (
        "ALTER TABLE governance_auditevent DISABLE TRIGGER ALL",
        "must be owner of table governance_auditevent",
    ),
    "drop trigger": (
        f"DROP TRIGGER {APPEND_ONLY_TRIGGER} ON governance_auditevent",
        "must be owner of relation governance_auditevent",
    ),
    "drop table": ("DROP TABLE governance_auditevent", "must be owner of table governance_auditevent"),
}


@pytest.fixture
def as_app(django_db_setup: None, request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[Any]]:
    """A connection logged in as the application role, on acme's schema (or the one the test is
    parametrized with)."""
    if database_url() == database_url(owner=True):
        pytest.skip("DATABASE_URL and DATABASE_OWNER_URL log in as one role: there is no application role")
    schema = getattr(request, "param", "acme")
    with psycopg.connect(database_url()) as conn:
        conn.execute(f"SET search_path = {schema}, public")
        yield conn
        conn.rollback()


def events(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """How many events the schema's chain holds, and the head's seq (the session made some)."""
    row = conn.execute("SELECT count(*), max(seq) FROM governance_auditevent").fetchone()
    assert row is not None and row[1] is not None
    return row[0], row[1]


def append(conn: psycopg.Connection[Any], verb: str = "test.app_role") -> tuple[int, str]:
    params = audit_append_params(
        actor=Actor.system("tests"), verb=verb, target_type="test", target_id="1", data={"via": "application role"}
    )
    row = conn.execute(f"SELECT seq, hash FROM {AUDIT_APPEND_CALL}", params).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("as_app", ["acme", "public"], indirect=True)
@pytest.mark.parametrize("statement", list(REFUSED), ids=list(REFUSED))
def test_the_application_role_cannot_change_the_audit_trail(as_app: psycopg.Connection[Any], statement: str) -> None:
    sql, message = REFUSED[statement]
    before = events(as_app)
    as_app.commit()
    with pytest.raises(errors.InsufficientPrivilege, match=message):
        as_app.execute(sql)
    as_app.rollback()
    assert events(as_app) == before
    enabled = as_app.execute(
        "SELECT tgenabled FROM pg_trigger WHERE tgname = %s AND tgrelid = 'governance_auditevent'::regclass",
        [APPEND_ONLY_TRIGGER],
    ).fetchone()
    assert enabled == ("O",)


@pytest.mark.parametrize("as_app", ["acme", "public"], indirect=True)
def test_the_application_role_appends_through_the_function(as_app: psycopg.Connection[Any]) -> None:
    count, head_seq = events(as_app)
    head = as_app.execute("SELECT hash FROM governance_auditevent WHERE seq = %s", [head_seq]).fetchone()
    seq, digest = append(as_app)
    assert seq == head_seq + 1
    row = as_app.execute("SELECT body, prev_hash, hash FROM governance_auditevent WHERE seq = %s", [seq]).fetchone()
    assert row is not None and head is not None
    body, prev_hash, stored = row
    assert (prev_hash, stored) == (head[0], digest)
    assert chain_hash(prev_hash, body) == digest
    assert events(as_app) == (count + 1, seq)


def test_a_temporary_table_cannot_stand_in_for_the_audit_table(as_app: psycopg.Connection[Any]) -> None:
    # Relations are looked up in pg_temp first: a table of the caller's there would otherwise
    # get the owner's appends, and its triggers would run with the owner's rights.
    as_app.execute("CREATE TEMP TABLE governance_auditevent (body text, prev_hash text, hash text, seq bigint)")
    with pytest.raises(errors.InsufficientPrivilege, match="does not resolve to the audit table"):
        append(as_app)
    as_app.rollback()
    as_app.execute("CREATE TEMP TABLE governance_auditevent (body text, prev_hash text, hash text, seq bigint)")
    as_app.execute("SET search_path = pg_temp, acme, public")
    with pytest.raises(errors.InsufficientPrivilege, match="does not resolve to the audit table"):
        as_app.execute(
            f"SELECT seq, hash FROM acme.{AUDIT_APPEND_CALL}",
            audit_append_params(actor=Actor.system("tests"), verb="test.forged", target_type="test"),
        )


def test_the_application_role_owns_nothing_and_can_create_nothing(as_app: psycopg.Connection[Any]) -> None:
    # What makes the SECURITY DEFINER append safe: no function, operator or table the
    # application role could make is ever found before the owner's.
    role = as_app.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert role == (False, False, False, False)
    assert as_app.execute("SELECT has_database_privilege(current_database(), 'CREATE')").fetchone() == (False,)
    creatable = as_app.execute(
        "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(oid, 'CREATE') "
        "AND nspname NOT LIKE 'pg\\_temp\\_%'"
    ).fetchall()
    assert creatable == []
    owned = as_app.execute("SELECT count(*) FROM pg_class WHERE relowner = current_user::regrole").fetchone()
    assert owned == (0,)
