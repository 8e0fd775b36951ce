"""`manage.py demo_endpoint --domain acme.localhost --url http://127.0.0.1:8099/`: point the demo
tenant's effects (refunds, replies, restarts) and order lookups at the demo's receiver
(config/demo_receiver.py), signed with the secret in ``--secret-env``. Run by `make demo` after
it starts the receiver; a second run updates the endpoint. The workers must be allowed to reach
the receiver's address (VIGIL_EGRESS_ALLOW=127.0.0.1)."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import CommandError, CommandParser

from agents.integrations import services
from agents.integrations.services import ENDPOINT_KINDS
from agents.models import Endpoint
from config.connection import connection
from tenants.management.commands._base import OperatorCommand
from tenants.models import Domain

NAME = "demo-receiver"


class Command(OperatorCommand):
    help = "Point the demo tenant's effects at the demo's local receiver."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--domain", required=True, help="the demo tenant's domain")
        parser.add_argument("--url", required=True, help="the receiver's URL")
        parser.add_argument("--secret-env", default="VIGIL_DEMO_RECEIVER_SECRET", help="variable with the secret")

    def handle(self, *args: Any, **options: Any) -> None:
        domain = Domain.objects.select_related("tenant").filter(domain=options["domain"]).first()
        if domain is None:
            raise CommandError(f"no tenant with domain {options['domain']!r}")
        secret = os.environ.get(options["secret_env"], "")
        if not secret:
            raise CommandError(f"{options['secret_env']} is not set: give the receiver's signing secret")
        connection.set_tenant(domain.tenant)
        actor = self.operator()
        fields = {"url": options["url"], "kinds": list(ENDPOINT_KINDS), "signing_secret": secret, "enabled": True}
        if Endpoint.objects.filter(name=NAME).exists():
            services.endpoint_update(name=NAME, actor=actor, **fields)
        else:
            services.endpoint_create(name=NAME, actor=actor, **fields)
        self.stdout.write(f"{options['domain']}: {', '.join(ENDPOINT_KINDS)} go to {options['url']}")
