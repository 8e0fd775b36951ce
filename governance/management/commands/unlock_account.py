from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.connection import connection
from governance.actors import Actor
from governance.context import new_correlation_id, set_correlation_id
from governance.lockout import lockout_lift
from tenants.models import Tenant, TenantStatus


class Command(BaseCommand):
    help = (
        "Lift the sign-in lockout of an account (--user) or a client address (--ip) of one tenant before it "
        "ends by itself, and forget its failures. Audited in the tenant's chain as auth.unlocked."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SCHEMA", required=True, help="the tenant's schema name")
        parser.add_argument("--user", metavar="USERNAME", default="", help="the account's username")
        parser.add_argument("--ip", metavar="ADDRESS", default="", help="the client address")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not (opts["user"] or opts["ip"]):
            raise CommandError("name an account (--user) or an address (--ip) to unlock")
        tenant = Tenant.objects.exclude(status=TenantStatus.SPARE).filter(schema_name=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant with schema {opts['tenant']!r}")
        try:
            who = getpass.getuser()
        except Exception:  # no passwd entry (containers): still an operator
            who = "unknown"
        set_correlation_id(new_correlation_id())
        connection.set_tenant(tenant)
        try:
            was_locked = lockout_lift(actor=Actor.operator(who), username=opts["user"], ip=opts["ip"])
        finally:
            connection.set_schema_to_public()
            set_correlation_id(None)
        what = " and ".join(
            f"{label} {opts[key]}" for key, label in (("user", "account"), ("ip", "address")) if opts[key]
        )
        self.stdout.write(f"{what} of {tenant.schema_name}: {'unlocked' if was_locked else 'was not locked'}")
