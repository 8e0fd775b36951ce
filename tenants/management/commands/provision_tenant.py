from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tenants.management.commands._base import OperatorCommand
from tenants.services import provision_request_build, tenant_provision
from tenants.tiers import Tier


class Command(OperatorCommand):
    help = "Provision a tenant: schema (from the warm pool when one is ready), domain, roles, first admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--domain", required=True, help="host name, e.g. acme.localhost")
        parser.add_argument("--tier", default=Tier.FREE, help=f"one of {', '.join(Tier.values)}")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", help="without it, a one-time invitation link is printed")
        parser.add_argument("--schema", help="schema name (default: from the domain's first label)")
        parser.add_argument("--demo", action="store_true", help="also create demo users (reviewer, viewer)")

    def handle(self, *args: Any, **opts: Any) -> None:
        request = provision_request_build(
            name=opts["name"],
            domain=opts["domain"],
            tier=opts["tier"],
            admin_email=opts["admin_email"],
            admin_password=opts["admin_password"],
            schema_name=opts["schema"],
            demo=opts["demo"],
        )
        result = tenant_provision(request=request, actor=self.operator())
        path = "warm pool" if result.from_pool else "migrations (pool was empty)"
        self.stdout.write(
            self.style.SUCCESS(
                f"Provisioned {result.tenant.name!r}: schema {result.tenant.schema_name}, domain {request.domain}, "
                f"tier {result.tenant.tier} via {path} in {result.timings_ms['total']:.0f} ms"
            )
        )
        self.stdout.write(f"Admin: {result.admin_username}")
        for user in result.demo_users:
            self.stdout.write(f"Demo user: {user}")
        if result.invitation_url:
            self.stdout.write(f"Invitation (one-time link to set the admin's password): {result.invitation_url}")
