from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from config.connection import connection
from config.errors import VigilError
from knowledge.ingestion import TYPES_BY_SUFFIX
from knowledge.models import DocumentStatus
from knowledge.services import document_embed, document_ingest
from tenants.management.commands._base import OperatorCommand
from tenants.models import Tenant, TenantStatus

BAR_WIDTH = 24


def _files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TYPES_BY_SUFFIX))
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"{name}: no such file or directory")
    return found


def _bar(done: int, total: int) -> str:
    filled = BAR_WIDTH * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"


class Command(OperatorCommand):
    help = (
        "Ingest files (.txt, .md, .html, .pdf; directories are searched) into a tenant's knowledge "
        "collection, created if missing. Embeds here with a progress bar, or with --queue on the workers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="the tenant's schema name")
        parser.add_argument("--collection", required=True, help="collection name (created with the local embedder)")
        parser.add_argument("--queue", action="store_true", help="let the Celery workers embed the documents")
        parser.add_argument("paths", nargs="+", metavar="PATH")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(schema_name=options["tenant"]).exclude(status=TenantStatus.SPARE).first()
        if tenant is None or tenant.schema_name == "public":
            raise CommandError(f"no tenant with schema {options['tenant']!r}")
        files = _files(options["paths"])
        connection.set_tenant(tenant)
        actor, failed = self.operator(), 0
        for number, path in enumerate(files, start=1):
            label = f"[{number}/{len(files)}] {path.name}"
            try:
                result = document_ingest(
                    collection=options["collection"],
                    data=path.read_bytes(),
                    filename=path.name,
                    actor=actor,
                    metadata={"path": str(path)},
                    create_collection=True,
                    enqueue=options["queue"],
                )
            except VigilError as exc:
                failed += 1
                self.stderr.write(f"{label}: refused: {exc}")
                continue
            document = result.document
            if not result.created:
                self.stdout.write(f"{label}: unchanged (document {document.pk})")
                continue
            if options["queue"]:
                self.stdout.write(f"{label}: queued (document {document.pk})")
                continue

            def progress(done: int, total: int, label: str = label) -> None:
                self.stdout.write(f"\r{label}: {_bar(done, total)} chunks", ending="")
                self.stdout.flush()

            embedded = document_embed(document_id=document.pk, progress=progress)
            self.stdout.write("")
            if embedded is None or embedded.status != DocumentStatus.READY:
                failed += 1
                self.stderr.write(f"{label}: failed: {embedded.error if embedded else 'deleted meanwhile'}")
            else:
                self.stdout.write(f"{label}: ready, {embedded.chunk_count} chunks (document {embedded.pk})")
        connection.set_schema_to_public()
        if failed:
            raise CommandError(f"{failed} of {len(files)} files were not ingested")
