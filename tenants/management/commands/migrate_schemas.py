from __future__ import annotations

from typing import Any

from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand

from config.dbroles import owner_connection


class Command(MigrateSchemasCommand):
    """django-tenants' migrate_schemas (and so ``migrate``), logged in as the owner role:
    migrations create and alter tables, which the application role cannot."""

    def handle(self, *args: Any, **options: Any) -> None:
        with owner_connection():
            super().handle(*args, **options)
