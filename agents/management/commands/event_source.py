"""`manage.py event_source --domain acme.localhost ACTION`: a tenant's event sources, for an
operator or a tenant's admin at the console (audited as the operator).

    event_source --domain acme.localhost add alertmanager --agent ops-bot --kind alertmanager
    event_source --domain acme.localhost list
    event_source --domain acme.localhost rotate-secret alertmanager

Without ``--secret`` / ``--secret-env`` a random secret is made and printed once: it is stored
encrypted and never shown again (``rotate-secret`` makes a new one).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import CommandError, CommandParser

from agents import intake
from agents.models import EventSource, EventSourceKind
from config.connection import connection
from tenants.management.commands._base import OperatorCommand
from tenants.models import Domain


def _secret_option(parser: CommandParser) -> None:
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--secret", help="the signing secret (visible to other users of this machine while it runs)")
    given.add_argument("--secret-env", help="read the signing secret from this environment variable")


class Command(OperatorCommand):
    help = "A tenant's event sources (signed event intake for ops agents). Actions: add, list, rotate-secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--domain", required=True, help="the tenant's domain, e.g. acme.localhost")
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="declare a source")
        add.add_argument("name", help="letters, digits, '-' and '_'; the last part of the ingest URL")
        add.add_argument("--agent", required=True, help="the ops agent its events go to")
        add.add_argument("--kind", choices=EventSourceKind.values, default=EventSourceKind.ALERTMANAGER)
        add.add_argument("--disabled", action="store_true", help="declare it switched off")
        _secret_option(add)
        actions.add_parser("list", help="the sources (never their secrets)")
        rotate = actions.add_parser("rotate-secret", help="replace a source's signing secret")
        rotate.add_argument("name")
        _secret_option(rotate)

    def _secret(self, options: dict[str, Any]) -> tuple[str, bool]:
        """The secret to store and whether it was made here (then it is printed once)."""
        if options.get("secret_env"):
            value = os.environ.get(options["secret_env"])
            if not value:
                raise CommandError(f"environment variable {options['secret_env']} is not set")
            return value, False
        if options.get("secret"):
            return str(options["secret"]), False
        return secrets.token_urlsafe(32), True

    def handle(self, *args: Any, **options: Any) -> None:
        domain = Domain.objects.select_related("tenant").filter(domain=options["domain"]).first()
        if domain is None or domain.tenant.schema_name == "public":
            raise CommandError(f"no tenant on {options['domain']}")
        connection.set_tenant(domain.tenant)
        try:
            getattr(self, f"_{options['action'].replace('-', '_')}")(options)
        finally:
            connection.set_schema_to_public()

    def _add(self, options: dict[str, Any]) -> None:
        secret, made = self._secret(options)
        source = intake.source_create(
            name=options["name"],
            kind=options["kind"],
            agent_name=options["agent"],
            secret=secret,
            enabled=not options["disabled"],
            actor=self.operator(),
        )
        self.stdout.write(f"event source {source.name} ({source.kind}) → agent {source.agent.name}")
        self.stdout.write(f"ingest URL path: /api/v1/events/ingest/{source.name}/")
        if made:
            self.stdout.write(f"signing secret (shown once): {secret}")

    def _list(self, options: dict[str, Any]) -> None:
        for source in EventSource.objects.select_related("agent").order_by("name"):
            state = "enabled" if source.enabled else "disabled"
            rotated = source.secret_rotated_at.isoformat(timespec="seconds")
            self.stdout.write(f"{source.name}\t{source.kind}\t{source.agent.name}\t{state}\tsecret set {rotated}")

    def _rotate_secret(self, options: dict[str, Any]) -> None:
        secret, made = self._secret(options)
        source = intake.source_update(name=options["name"], actor=self.operator(), secret=secret)
        self.stdout.write(f"event source {source.name}: signing secret replaced")
        if made:
            self.stdout.write(f"signing secret (shown once): {secret}")
