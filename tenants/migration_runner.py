"""Migrating many schemas: only those with pending migrations, several at once."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.management import call_command
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django_tenants.utils import get_public_schema_name

from config.connection import connection
from tenants.models import Tenant


@dataclass(frozen=True)
class SchemaOutcome:
    schema: str
    seconds: float
    error: str = ""


def schemas_with_pending_migrations() -> tuple[list[str], int]:
    """Schemas (tenants and spares) that still have migrations to apply, and how many schemas
    were checked. What is already applied is skipped, so an interrupted run resumes."""
    schemas = list(
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .order_by("schema_name")
        .values_list("schema_name", flat=True)
    )
    pending = []
    try:
        for schema in schemas:
            connection.set_schema(schema, include_public=False)
            executor = MigrationExecutor(connection)
            if executor.migration_plan(executor.loader.graph.leaf_nodes()):
                pending.append(schema)
    finally:
        connection.set_schema_to_public()
    return pending, len(schemas)


def _migrate_one(schema: str) -> SchemaOutcome:
    # Runs in a forked child: never reuse the parent's socket.
    connections.close_all()
    started = time.perf_counter()
    try:
        call_command("migrate_schemas", tenant=True, schema_name=schema, interactive=False, verbosity=0)
    except Exception as exc:  # reported per schema; the others go on
        return SchemaOutcome(schema, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    finally:
        connections.close_all()
    return SchemaOutcome(schema, time.perf_counter() - started)


def migrate_schemas_parallel(schemas: list[str], *, processes: int) -> Iterator[SchemaOutcome]:
    """Yield one outcome per schema as each finishes."""
    if not schemas:
        return
    connections.close_all()
    if processes <= 1:
        for schema in schemas:
            yield _migrate_one(schema)
        return
    with multiprocessing.get_context("fork").Pool(processes=processes) as pool:
        yield from pool.imap_unordered(_migrate_one, schemas)
