#!/usr/bin/env python
import os
import sys

NOT_MIGRATED = "the database is not migrated: run `make migrate` (or `manage.py migrate_tenants`)"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import ProgrammingError

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads the settings, which refuse unsafe production values)
    except ImproperlyConfigured as exc:
        sys.exit(f"error: {exc}")
    try:
        execute_from_command_line(sys.argv)
    except ProgrammingError:
        if not database_unmigrated():
            raise
        sys.exit(NOT_MIGRATED)


def database_unmigrated() -> bool:
    """True when the public schema lacks migrations that the code has: a command that fails on a
    missing table or column was run before `migrate_tenants`."""
    from django.db.migrations.executor import MigrationExecutor

    from config.connection import connection

    connection.close()  # the failed command may have left its transaction aborted
    connection.set_schema_to_public()
    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


if __name__ == "__main__":
    main()
