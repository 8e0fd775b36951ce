"""Prepared statements for the hot paths (a governed step, an audit append).

Django's psycopg backend binds parameters on the client and sends every statement as new
text, so the server parses and plans it each time. The few statements a step runs hundreds
of times a second go through ``prepared_cursor`` instead: a psycopg cursor on the same
connection (so the same transaction) with server-side binding, whose statements are
prepared once per connection. PostgreSQL re-plans a prepared statement when
``search_path`` changes, so one prepared statement serves every tenant schema.

Set ``VIGIL_DB_PREPARE=0`` behind a pooler that cannot keep prepared statements
(PgBouncer in transaction mode before 1.21).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings

from config.connection import connection


class PreparedCursor:
    """The subset of a DB-API cursor the hot paths use. Errors are Django's (IntegrityError
    and friends), and Django's ``execute_wrapper`` hooks see every statement."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        def run(sql: str, params: Sequence[Any] | Mapping[str, Any], many: bool, context: dict[str, Any]) -> None:
            with connection.wrap_database_errors:
                self._cursor.execute(sql, params, prepare=settings.VIGIL_DB_PREPARE or None)

        for wrapper in reversed(connection.execute_wrappers):
            run = functools.partial(wrapper, run)
        run(sql, params, False, {"connection": connection, "cursor": self})

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


@contextmanager
def prepared_cursor() -> Iterator[PreparedCursor]:
    """A cursor on the default connection for statements run on every step."""
    # Opening a Django cursor first lets django-tenants issue its SET search_path when the
    # schema changed since the last statement; the raw cursor then runs on that path.
    with connection.cursor():
        pass
    cursor = psycopg.Cursor(connection.connection)
    try:
        yield PreparedCursor(cursor)
    finally:
        cursor.close()
