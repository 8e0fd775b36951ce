"""Two database logins: the application role and the owner.

Web and workers log in as the application role (``DATABASE_URL``), which may read and write
rows but owns nothing, so it can never alter, truncate or drop a table or disable a trigger:
the audit trail's append-only guard holds even against the application's own connection.
Migrations and the code that creates, renames or drops schemas log in as the owner of the
tables (``DATABASE_OWNER_URL``) through ``owner_connection``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections


class OwnerConnectionError(RuntimeError):
    """Schema changes were asked for inside a transaction of the application role."""


def is_owner_login() -> bool:
    """Whether the default connection already logs in as the owner (one-role setups, the tests)."""
    current = connections[DEFAULT_DB_ALIAS].settings_dict
    return all(current.get(key) == value for key, value in settings.DATABASE_OWNER.items())


@contextmanager
def owner_connection() -> Iterator[None]:
    """Run the block (or, as a decorator, the function) with the default connection logged
    in as the owner; on leaving, the connection closes and the next query logs in as before.

    Where the default connection already is the owner's it changes nothing, so it nests and
    runs inside the caller's transaction. Otherwise it reconnects, which must not happen in
    the middle of a transaction: raises OwnerConnectionError inside an atomic block.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    if is_owner_login():
        yield
        return
    if conn.in_atomic_block:
        raise OwnerConnectionError(
            "schema changes run as the database owner, on a connection of their own: call this outside any transaction"
        )
    saved = conn.settings_dict
    conn.close()
    # A new dict for this thread's connection only: settings.DATABASES stays the application's.
    conn.settings_dict = {**saved, **settings.DATABASE_OWNER}
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict = saved
