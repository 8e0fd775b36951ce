from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from tenants.management.commands._base import OperatorCommand
from tenants.selectors import spare_count, tenant_limits, tenant_list


class Command(OperatorCommand):
    help = "List tenants with tier, status, domains and effective limits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenants = list(tenant_list().order_by("schema_name"))
        if opts["json"]:
            for t in tenants:
                self.stdout.write(
                    json.dumps(
                        {
                            "schema": t.schema_name,
                            "name": t.name,
                            "tier": t.tier,
                            "status": t.status,
                            "domains": [d.domain for d in t.domains.all()],
                            "created_at": t.created_at.isoformat(),
                            "limits": tenant_limits(tenant=t).as_dict(),
                        }
                    )
                )
            return
        self.stdout.write(f"{'SCHEMA':<20} {'NAME':<24} {'TIER':<13} {'STATUS':<10} DOMAINS")
        for t in tenants:
            domains = ",".join(d.domain for d in t.domains.all())
            self.stdout.write(f"{t.schema_name:<20} {t.name[:24]:<24} {t.tier:<13} {t.status:<10} {domains}")
        self.stdout.write(f"{len(tenants)} tenant(s); {spare_count()} spare schema(s) in the warm pool")
