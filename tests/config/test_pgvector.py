from __future__ import annotations

import pytest

from config.connection import connection
from tenants.models import Tenant


@pytest.mark.django_db
def test_vector_extension_lives_in_public_and_tenant_schemas_use_it_through_the_search_path(in_acme: Tenant) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )
        assert cursor.fetchone() == ("public",)
        cursor.execute("SELECT current_schema()")
        assert cursor.fetchone() == ("acme",)
        cursor.execute("CREATE TEMP TABLE probe (embedding vector(3))")
        cursor.execute("INSERT INTO probe VALUES ('[1,0,0]'), ('[0,1,0]')")
        cursor.execute("SELECT embedding <-> '[1,0,0]' FROM probe ORDER BY 1")
        assert [round(row[0], 3) for row in cursor.fetchall()] == [0.0, 1.414]


@pytest.mark.django_db
def test_no_tenant_migration_creates_the_extension() -> None:
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection, ignore_no_migrations=True)
    offenders = []
    for (app, name), migration in loader.disk_migrations.items():
        if app == "tenants":
            continue  # shared-only app: runs on public alone
        for operation in migration.operations:
            sql = str(getattr(operation, "sql", "")).lower()
            if "create extension" in sql:
                offenders.append(f"{app}.{name}")
    assert offenders == []
