from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tenants.management.commands._base import OperatorCommand
from tenants.services import tenant_suspend


class Command(OperatorCommand):
    help = "Suspend a tenant (audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schema", help="the tenant's schema name")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_suspend(schema_name=opts["schema"], actor=self.operator())
        self.stdout.write(self.style.SUCCESS(f"{tenant.schema_name}: {tenant.status}"))
