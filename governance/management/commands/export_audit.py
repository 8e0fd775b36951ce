from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import get_public_schema_name, get_tenant_model

from config.connection import connection
from governance.actors import Actor
from governance.audit_query import FILTERS, AuditFilterError, audit_filter_parse
from governance.export import FORMATS, audit_export


class Command(BaseCommand):
    help = (
        "Export a schema's audit chain as JSONL or CSV with its chain proof (governance/export.py "
        "describes the formats); check it anywhere with manage.py verify_export FILE."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SCHEMA", required=True, help="a tenant's schema name, or 'public'")
        parser.add_argument("--format", choices=sorted(FORMATS), default="jsonl")
        parser.add_argument("--output", metavar="FILE", help="write here (atomically) instead of to stdout")
        for name in FILTERS:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=f"filter_{name}", metavar="VALUE")

    def handle(self, *args: Any, **opts: Any) -> None:
        schema = opts["tenant"]
        tenant = get_tenant_model().objects.exclude(status="spare").filter(schema_name=schema).first()
        if tenant is None:
            raise CommandError(f"no tenant with schema {schema!r}")
        params = {name: opts[f"filter_{name}"] for name in FILTERS if opts[f"filter_{name}"] is not None}
        try:
            audit_filter = audit_filter_parse(params)
        except AuditFilterError as exc:
            name = str(exc.extra["filter"])
            raise CommandError(f"--{name.replace('_', '-')}: {exc.detail.removeprefix(name + ': ')}") from None
        if schema == get_public_schema_name():
            connection.set_schema_to_public()
        else:
            connection.set_tenant(tenant)
        try:
            export = audit_export(audit_filter=audit_filter, fmt=opts["format"], actor=Actor.operator("export_audit"))
            if opts["output"]:
                count = self._to_file(Path(opts["output"]), export.chunks)
                self.stderr.write(f"{schema}: exported up to seq {export.head_seq} to {opts['output']} ({count} bytes)")
            else:
                for chunk in export.chunks:
                    self.stdout.write(chunk, ending="")
                self.stdout.flush()
        finally:
            connection.set_schema_to_public()

    @staticmethod
    def _to_file(path: Path, chunks: Any) -> int:
        # Written beside the target and renamed: a failed export never leaves a partial file
        # that could pass for a whole one.
        temporary = path.with_name(f".{path.name}.partial")
        size = 0
        try:
            with open(temporary, "w", encoding="utf-8", newline="") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return size
