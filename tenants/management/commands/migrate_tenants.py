from __future__ import annotations

import os
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser

from config.dbroles import owner_connection
from tenants.management.commands._base import OperatorCommand
from tenants.migration_runner import migrate_schemas_parallel, schemas_with_pending_migrations


class Command(OperatorCommand):
    help = (
        "Migrate the public schema, then every tenant and spare schema with pending migrations, "
        "in parallel, with progress. Safe to re-run: finished schemas are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--processes", type=int, default=min(4, os.cpu_count() or 1))
        parser.add_argument("--skip-public", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["processes"] < 1:
            raise CommandError("--processes must be >= 1")
        # The forked processes that migrate the schemas keep this login.
        with owner_connection():
            self._migrate(**opts)

    def _migrate(self, **opts: Any) -> None:
        if not opts["skip_public"]:
            call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
            self.stdout.write("public: migrated")
        pending, checked = schemas_with_pending_migrations()
        self.stdout.write(f"{checked} schema(s) checked, {len(pending)} with pending migrations")
        failures = []
        for done, outcome in enumerate(migrate_schemas_parallel(pending, processes=opts["processes"]), 1):
            status = self.style.ERROR(f"FAILED {outcome.error}") if outcome.error else self.style.SUCCESS("ok")
            self.stdout.write(f"[{done}/{len(pending)}] {outcome.schema}: {status} ({outcome.seconds:.1f}s)")
            if outcome.error:
                failures.append(outcome.schema)
        if failures:
            raise CommandError(f"{len(failures)} schema(s) failed: {', '.join(failures)}; re-run to resume")
