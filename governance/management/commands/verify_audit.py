from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import get_public_schema_name

from config.connection import connection
from governance.verification import audit_chain_verify
from tenants.models import Tenant, TenantStatus


class Command(BaseCommand):
    help = "Recompute the audit hash chain of one schema (--tenant) or of every schema; name the first broken seq."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SCHEMA", help="a tenant's schema name, or 'public'")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenants = Tenant.objects.exclude(status=TenantStatus.SPARE).order_by("schema_name")
        if opts["tenant"]:
            tenants = tenants.filter(schema_name=opts["tenant"])
            if not tenants.exists():
                raise CommandError(f"no tenant with schema {opts['tenant']!r}")
        broken = []
        for tenant in tenants:
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
        connection.set_schema_to_public()
        if broken:
            raise CommandError(f"audit chain broken in: {', '.join(broken)}")
