from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import get_public_schema_name

from config.connection import connection
from governance.checkpoints import (
    CheckpointError,
    checkpoint_check,
    checkpoint_paths,
    checkpoint_read,
    checkpoint_schemas,
    public_key_parse,
    signing_key,
)
from governance.verification import audit_chain_verify
from tenants.models import Tenant, TenantStatus


class Command(BaseCommand):
    help = (
        "Recompute the audit hash chain of one schema (--tenant) or of every schema; name the first broken seq. "
        "With --checkpoints DIR, also prove each chain still extends every signed checkpoint in DIR."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SCHEMA", help="a tenant's schema name, or 'public'")
        parser.add_argument(
            "--checkpoints", metavar="DIR", help="a directory of signed checkpoints (VIGIL_CHECKPOINT_DIR)"
        )
        parser.add_argument(
            "--public-key",
            metavar="BASE64",
            help="the key the checkpoints must be signed with (default: that of VIGIL_CHECKPOINT_KEY)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        tenants = Tenant.objects.exclude(status=TenantStatus.SPARE).order_by("schema_name")
        if opts["tenant"]:
            tenants = tenants.filter(schema_name=opts["tenant"])
            if not tenants.exists():
                raise CommandError(f"no tenant with schema {opts['tenant']!r}")
        directory = Path(opts["checkpoints"]) if opts["checkpoints"] else None
        public_key = None
        if directory is not None:
            if not directory.is_dir():
                raise CommandError(f"--checkpoints: {directory} is not a directory")
            try:
                public_key = public_key_parse(opts["public_key"]) if opts["public_key"] else signing_key().public_key()
            except CheckpointError as exc:
                raise CommandError(f"--public-key: {exc}") from None
        broken = []
        seen = set()
        for tenant in tenants:
            seen.add(tenant.schema_name)
            connection.set_tenant(
                tenant
            ) if tenant.schema_name != get_public_schema_name() else connection.set_schema_to_public()
            started = time.perf_counter()
            report = audit_chain_verify()
            took = time.perf_counter() - started
            if report.ok:
                self.stdout.write(
                    f"{report.schema}: OK, {report.events} events, head {report.head_hash[:16]}… ({took:.2f}s)"
                )
            else:
                broken.append(f"{report.schema} at seq {report.broken_seq}")
                self.stdout.write(
                    self.style.ERROR(
                        f"{report.schema}: BROKEN at seq {report.broken_seq}: {report.reason} "
                        f"({report.events} events verified before it)"
                    )
                )
            if directory is not None and public_key is not None:
                broken += self._checkpoints(directory, tenant.schema_name, public_key)
        connection.set_schema_to_public()
        if directory is not None and not opts["tenant"]:
            for schema in sorted(set(checkpoint_schemas(directory)) - seen):
                self.stdout.write(self.style.ERROR(f"{schema}: has checkpoints but no audit chain in the database"))
                broken.append(f"{schema} (missing)")
        if broken:
            raise CommandError(f"audit chain broken in: {', '.join(broken)}")

    def _checkpoints(self, directory: Path, schema: str, public_key: Ed25519PublicKey) -> list[str]:
        """Check the current schema's chain against its checkpoints; the failures, as
        ``verify_audit`` names them."""
        paths = checkpoint_paths(directory, schema)
        failures, latest = [], None
        for path in paths:
            try:
                checkpoint = checkpoint_read(path, public_key=public_key)
                if checkpoint.schema != schema:
                    raise CheckpointError(f"{path.name}: a checkpoint of {checkpoint.schema} among {schema}'s")
            except CheckpointError as exc:
                self.stdout.write(self.style.ERROR(f"{schema}: CHECKPOINT UNTRUSTED: {exc}"))
                failures.append(f"{schema} (checkpoint {path.name})")
                continue
            problem = checkpoint_check(checkpoint)
            if problem:
                self.stdout.write(self.style.ERROR(f"{schema}: DOES NOT EXTEND checkpoint {path.name}: {problem}"))
                failures.append(f"{schema} at checkpoint seq {checkpoint.seq}")
            latest = checkpoint
        if not failures:
            where = f", the latest at seq {latest.seq} ({latest.created_at})" if latest else ""
            self.stdout.write(f"{schema}: extends all {len(paths)} checkpoints{where}")
        return failures
