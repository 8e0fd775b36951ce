"""Re-encrypt every stored secret with the current key of VIGIL_CREDENTIALS_KEY.

Rotation: put the new key first in VIGIL_CREDENTIALS_KEY (the old one after it), restart the
processes, run this command, then drop the old key. Each tenant's credentials, endpoint and
event-source signing secrets and single sign-on client secret are re-encrypted in one
transaction of that tenant's, then the operators' LLM
keys of the public schema in one more, each audited in its own chain with counts only. A secret
no configured key reads leaves its transaction unchanged and the command fails naming the
tenant, never the value."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import transaction

from agents.integrations.secrets import SecretUnreadable, secret_rotate, secrets_reset
from agents.models import Credential, Endpoint, EventSource
from config.connection import connection
from governance.models import SsoProvider
from governance.services import audit_record
from tenants.management.commands._base import OperatorCommand
from tenants.models import LLMConnection, Tenant


class Command(OperatorCommand):
    help = "Re-encrypt every stored credential, signing secret and operator LLM key with the current key."

    def handle(self, *args: Any, **options: Any) -> None:
        secrets_reset()
        actor = self.operator()
        failed: list[str] = []
        tenants = list(Tenant.objects.exclude(schema_name="public").order_by("schema_name"))
        for tenant in tenants:
            connection.set_tenant(tenant)
            try:
                with transaction.atomic():
                    credentials = 0
                    for credential in Credential.objects.select_for_update():
                        credential.secret = secret_rotate(credential.secret)
                        credential.save(update_fields=["secret"])
                        credentials += 1
                    endpoints = 0
                    for endpoint in Endpoint.objects.select_for_update():
                        endpoint.signing_secret = secret_rotate(endpoint.signing_secret)
                        endpoint.save(update_fields=["signing_secret"])
                        endpoints += 1
                    sources = 0
                    for source in EventSource.objects.select_for_update():
                        source.secret_token = secret_rotate(source.secret_token)
                        source.save(update_fields=["secret_token"])
                        sources += 1
                    providers = 0
                    for provider in SsoProvider.objects.select_for_update().exclude(client_secret_encrypted=""):
                        provider.client_secret_encrypted = secret_rotate(provider.client_secret_encrypted)
                        provider.save(update_fields=["client_secret_encrypted"])
                        providers += 1
                    if credentials or endpoints or sources or providers:
                        audit_record(
                            actor=actor,
                            verb="credentials.key_rotated",
                            target_type="tenant",
                            target_id=tenant.schema_name,
                            data={
                                "credentials": credentials,
                                "endpoints": endpoints,
                                "event_sources": sources,
                                "sso_providers": providers,
                            },
                        )
            except SecretUnreadable:
                failed.append(tenant.schema_name)
                continue
            finally:
                connection.set_schema_to_public()
            if credentials or endpoints or sources or providers:
                self.stdout.write(
                    f"{tenant.schema_name}: {credentials} credential(s), {endpoints} endpoint(s), "
                    f"{sources} event source(s), {providers} single sign-on provider(s)"
                )
        connection.set_schema_to_public()
        try:
            with transaction.atomic():
                keys = 0
                for conn in LLMConnection.objects.select_for_update().exclude(api_key_encrypted=""):
                    conn.api_key_encrypted = secret_rotate(conn.api_key_encrypted)
                    conn.save(update_fields=["api_key_encrypted"])
                    keys += 1
                if keys:
                    audit_record(
                        actor=actor,
                        verb="credentials.key_rotated",
                        target_type="llm_connections",
                        data={"llm_keys": keys},
                    )
            self.stdout.write(f"public: {keys} LLM connection key(s)")
        except SecretUnreadable:
            failed.append("public")
        if failed:
            raise CommandError(
                f"secrets that no key of VIGIL_CREDENTIALS_KEY reads in: {', '.join(failed)} (left unchanged there)"
            )
        self.stdout.write(self.style.SUCCESS(f"re-encrypted with the current key ({len(tenants)} tenant schema(s))"))
