from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tenants.management.commands._base import OperatorCommand
from tenants.services import tenant_delete


class Command(OperatorCommand):
    help = "Delete a tenant with its schema and all its data. Needs --confirm <schema>."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schema", help="the tenant's schema name")
        parser.add_argument("--confirm", required=True, help="repeat the schema name to confirm")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant_delete(schema_name=opts["schema"], confirm=opts["confirm"], actor=self.operator())
        self.stdout.write(self.style.SUCCESS(f"{opts['schema']}: deleted"))
