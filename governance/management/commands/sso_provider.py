from __future__ import annotations

import getpass
import json
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.connection import connection
from config.errors import VigilError
from governance.actors import Actor
from governance.context import new_correlation_id, set_correlation_id
from governance.models import SsoProvider
from governance.sso import sso_provider_save
from tenants.models import Tenant, TenantStatus

SECRET_VARIABLE = "VIGIL_SSO_CLIENT_SECRET"  # noqa: S105  (the name of a variable)


class Command(BaseCommand):
    help = (
        "Set a tenant's single sign-on provider (OpenID Connect): created, or updated when the tenant has one. "
        f"The client secret is read from {SECRET_VARIABLE}, never from the command line, and stored encrypted. "
        "Audited in the tenant's chain as sso.provider_saved."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SCHEMA", required=True, help="the tenant's schema name")
        parser.add_argument("--issuer", required=True, help="the provider's issuer URL")
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--tid", required=True, help="the tid claim the tenant's tokens carry")
        parser.add_argument("--name", default="SSO", help="shown on the login button")
        parser.add_argument("--scopes", default="openid email profile groups tid")
        parser.add_argument(
            "--role-mapping",
            default="{}",
            metavar="JSON",
            help='claim -> value -> role, e.g. {"groups": {"vigil-admins": "admin"}}',
        )
        parser.add_argument("--disable", action="store_true", help="keep the settings but turn single sign-on off")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.exclude(status=TenantStatus.SPARE).filter(schema_name=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant with schema {opts['tenant']!r}")
        try:
            mapping = json.loads(opts["role_mapping"])
        except ValueError:
            raise CommandError("--role-mapping is not JSON") from None
        secret = os.environ.get(SECRET_VARIABLE) or None
        try:
            who = getpass.getuser()
        except Exception:  # no passwd entry (containers): still an operator
            who = "unknown"
        set_correlation_id(new_correlation_id())
        connection.set_tenant(tenant)
        try:
            provider = SsoProvider.objects.first() or SsoProvider()
            if provider.pk is None and secret is None:
                raise CommandError(f"give the client secret in {SECRET_VARIABLE}")
            provider.name, provider.issuer, provider.client_id = opts["name"], opts["issuer"], opts["client_id"]
            provider.tid, provider.scopes, provider.role_mapping = opts["tid"], opts["scopes"], mapping
            provider.enabled = not opts["disable"]
            sso_provider_save(provider=provider, client_secret=secret, actor=Actor.operator(who))
        except VigilError as exc:
            raise CommandError(exc.detail) from None
        finally:
            connection.set_schema_to_public()
            set_correlation_id(None)
        state = "disabled" if opts["disable"] else "enabled"
        self.stdout.write(f"single sign-on of {tenant.schema_name}: {provider.issuer} ({provider.client_id}), {state}")
