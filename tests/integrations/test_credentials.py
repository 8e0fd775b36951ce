"""Credentials and endpoints: encrypted at rest, write-only in the API and the admin, absent
from audit data, errors, task context and logs; the operator's egress rules on save and at
delivery; rotate_credentials_key."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import Client

from agents.intake import source_create
from agents.integrations.relay import relay_deliver_task
from agents.integrations.secrets import secret_decrypt, secrets_reset
from agents.models import Credential, Endpoint, EventSource, OutboxMessage, Step, Task
from agents.services import agent_create
from config.connection import connection
from governance.models import AuditEvent
from tenants.connections import llm_connection_api_key, llm_connection_create, llm_connection_key_set
from tenants.models import LLMConnection, Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE, RITA
from tests.integrations.support import ADMIN, SECRET, TOKEN, ScriptedReceiver, endpoint_for_receiver, reply_task

pytestmark = pytest.mark.django_db

CREDENTIALS = "/api/v1/integrations/credentials/"
ENDPOINTS = "/api/v1/integrations/endpoints/"
PUBLIC_URL = "https://93.184.215.14/hooks"


def _post(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


def _endpoint(name: str, url: str, kind: str) -> dict[str, Any]:
    return {"name": name, "url": url, "kinds": [kind], "signing_secret": SECRET}


def _audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("verb", "target_id", "data")), default=str)


def test_a_credential_goes_in_through_the_api_and_never_comes_out(acme: Tenant, acme_client: Client) -> None:
    client = signed_in(acme_client, acme, ALICE)

    created = _post(client, CREDENTIALS, {"name": "orders-token", "kind": "bearer", "secret": TOKEN})
    rotated = client.patch(
        CREDENTIALS + "orders-token/", json.dumps({"secret": TOKEN + "-2"}), content_type="application/json"
    )
    listed, shown = client.get(CREDENTIALS), client.get(CREDENTIALS + "orders-token/")

    assert (created.status_code, rotated.status_code, listed.status_code, shown.status_code) == (201, 200, 200, 200)
    for response in (created, rotated, listed, shown):
        assert TOKEN not in response.content.decode()
        assert "secret" not in json.dumps(response.json()).replace("secret_", "")
    assert shown.json()["rotated_at"] is not None and shown.json()["created_by"] == ALICE
    connection.set_tenant(acme)
    stored = Credential.objects.get(name="orders-token")
    assert TOKEN not in stored.secret and secret_decrypt(stored.secret) == TOKEN + "-2"
    assert TOKEN not in _audit_text()
    verbs = AuditEvent.objects.filter(target_type="credential", target_id="orders-token").order_by("seq")
    assert list(verbs.values_list("verb", flat=True)) == ["credential.created", "credential.rotated"]


def test_bad_credential_input_names_the_field_not_the_secret(acme: Tenant, acme_client: Client) -> None:
    client = signed_in(acme_client, acme, ALICE)

    basic = _post(client, CREDENTIALS, {"name": "billing", "kind": "basic", "secret": "no-colon-" + TOKEN})
    header = _post(client, CREDENTIALS, {"name": "billing", "kind": "header", "header_name": "Host", "secret": TOKEN})

    assert basic.status_code == 400 and basic.json()["extra"]["fields"] == {
        "secret": "basic credentials are 'user:password'"
    }
    assert header.status_code == 400 and "header_name" in header.json()["extra"]["fields"]
    assert TOKEN not in basic.content.decode() + header.content.decode()


def test_only_admins_see_or_change_credentials(acme: Tenant, acme_client: Client) -> None:
    client = signed_in(acme_client, acme, RITA)

    assert client.get(CREDENTIALS).status_code == 403
    assert _post(client, CREDENTIALS, {"name": "x", "kind": "bearer", "secret": TOKEN}).status_code == 403


def test_an_endpoint_signing_secret_is_write_only(acme: Tenant, acme_client: Client) -> None:
    client = signed_in(acme_client, acme, ALICE)

    created = _post(
        client, ENDPOINTS, {"name": "orders", "url": PUBLIC_URL, "kinds": ["refund", "reply"], "signing_secret": SECRET}
    )
    taken = _post(
        client, ENDPOINTS, {"name": "other", "url": PUBLIC_URL, "kinds": ["refund"], "signing_secret": SECRET}
    )
    shown = client.get(ENDPOINTS + "orders/")

    assert created.status_code == 201 and created.json()["kinds"] == ["refund", "reply"]
    assert taken.status_code == 400 and taken.json()["extra"]["fields"] == {"kinds": "refund goes to orders already"}
    assert SECRET not in created.content.decode() + shown.content.decode() and "signing_secret" not in shown.json()
    assert SECRET not in _audit_text()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hooks",
        "http://localhost:9/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hooks",
        "http://[64:ff9b::a00:5]/hooks",  # NAT64 of 10.0.0.5
        "http://[2002:a9fe:a9fe::]/hooks",  # 6to4 of 169.254.169.254
        "http://[::127.0.0.1]/hooks",  # IPv4-compatible loopback
        "http://0.0.0.0/hooks",
        "ftp://93.184.215.14/hooks",
        "http://user:pw@93.184.215.14/hooks",
    ],
)
def test_a_url_the_operator_does_not_allow_is_refused_naming_it(acme: Tenant, acme_client: Client, url: str) -> None:
    client = signed_in(acme_client, acme, ALICE)

    response = _post(client, ENDPOINTS, {"name": "inside", "url": url, "kinds": ["refund"], "signing_secret": SECRET})

    assert response.status_code == 400, response.content
    assert list(response.json()["extra"]["fields"]) == ["url"]
    connection.set_tenant(acme)
    assert not Endpoint.objects.filter(name="inside").exists()


def test_the_operator_may_allow_a_private_address(acme: Tenant, acme_client: Client, settings: Any) -> None:
    settings.VIGIL_EGRESS_ALLOW = ["10.0.0.0/8"]
    client = signed_in(acme_client, acme, ALICE)

    allowed = _post(
        client, ENDPOINTS, {"name": "in-10", "url": "http://10.1.2.3/", "kinds": ["refund"], "signing_secret": SECRET}
    )
    refused = _post(
        client,
        ENDPOINTS,
        {"name": "in-192", "url": "http://192.168.1.1/", "kinds": ["reply"], "signing_secret": SECRET},
    )

    assert (allowed.status_code, refused.status_code) == (201, 400)


def test_delivery_checks_the_egress_rules_again(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver, settings: Any
) -> None:
    """An address allowed when the endpoint was saved but not at delivery (the operator changed
    the rules, or the name now resolves elsewhere) receives nothing."""
    endpoint_for_receiver(receiver)
    task, message = reply_task()
    settings.VIGIL_EGRESS_ALLOW = []

    relay_deliver_task(task_id=task.pk)

    failed = OutboxMessage.objects.get(pk=message.pk)
    assert failed.status == "failed" and "127.0.0.1" in failed.last_error and receiver.keys() == []


def test_a_delivery_leaves_the_credential_out_of_task_context_audit_and_logs(
    in_acme: Tenant, loopback_allowed: None, receiver: ScriptedReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint_for_receiver(receiver)
    task, message = reply_task()
    receiver.answers = [500, 401]

    relay_deliver_task(task_id=task.pk)
    relay_deliver_task(task_id=task.pk)  # may be too early for the retry: then a third run
    relay_deliver_task(task_id=task.pk)

    assert receiver.headers and all(h["Authorization"] == f"Bearer {TOKEN}" for h in receiver.headers)
    context = json.dumps(
        [
            list(Task.objects.filter(pk=task.pk).values("input", "output", "last_error")),
            list(Step.objects.filter(task=task).values("arguments", "result", "reasoning")),
            list(OutboxMessage.objects.filter(pk=message.pk).values("payload", "last_error")),
        ],
        default=str,
    )
    assert TOKEN not in context and SECRET not in context
    assert TOKEN not in _audit_text() and SECRET not in _audit_text()
    assert TOKEN not in caplog.text and SECRET not in caplog.text


def test_the_admin_forms_never_show_a_secret(acme: Tenant, acme_client: Client) -> None:
    client = signed_in(acme_client, acme, ALICE)

    added = client.post(
        "/admin/agents/credential/add/", {"name": "admin-token", "kind": "bearer", "header_name": "", "value": TOKEN}
    )
    connection.set_tenant(acme)
    credential = Credential.objects.get(name="admin-token")
    connection.set_schema_to_public()
    page = client.get(f"/admin/agents/credential/{credential.pk}/change/")

    assert added.status_code == 302 and page.status_code == 200
    assert TOKEN not in page.content.decode() and credential.secret not in page.content.decode()
    connection.set_tenant(acme)
    assert AuditEvent.objects.filter(verb="credential.created", target_id="admin-token").exists()


def test_rotate_credentials_key_re_encrypts_every_secret_with_the_new_key(in_acme: Tenant, settings: Any) -> None:
    credential = _credential()
    endpoint = Endpoint.objects.create(name="rot", url=PUBLIC_URL, kinds=["restart"], signing_secret=credential.secret)
    agent_create(name="rot-ops", blueprint="ops", privilege_ceiling=4)
    source = source_create(name="rot-alerts", kind="generic", agent_name="rot-ops", secret=TOKEN, actor=ADMIN)
    connection.set_schema_to_public()
    llm = llm_connection_create(
        name="rot-llm", base_url="https://llm.example/v1", api_key_env="ROT_KEY", allowed_models=["m"], actor=ADMIN
    )
    llm_connection_key_set(name=llm.name, api_key="sk-operator-key", actor=ADMIN)
    new = Fernet.generate_key().decode()
    current = settings.VIGIL_CREDENTIALS_KEYS or [_development_key()]
    settings.VIGIL_CREDENTIALS_KEYS = [new, *current]
    out = io.StringIO()
    try:
        call_command("rotate_credentials_key", stdout=out)
        # Only the new key is needed from now on.
        settings.VIGIL_CREDENTIALS_KEYS = [new]
        secrets_reset()
        connection.set_tenant(Tenant.objects.get(schema_name="acme"))
        assert secret_decrypt(Credential.objects.get(pk=credential.pk).secret) == TOKEN
        assert secret_decrypt(Endpoint.objects.get(pk=endpoint.pk).signing_secret) == TOKEN
        assert secret_decrypt(EventSource.objects.get(pk=source.pk).secret_token) == TOKEN
        connection.set_schema_to_public()
        assert llm_connection_api_key(LLMConnection.objects.get(name="rot-llm")) == "sk-operator-key"
    finally:
        settings.VIGIL_CREDENTIALS_KEYS = current
        secrets_reset()
    assert "acme: 1 credential(s), 1 endpoint(s), 1 event source(s), 0 single sign-on provider(s)" in out.getvalue()
    assert "public: 1 LLM connection key(s)" in out.getvalue()
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    rotated = AuditEvent.objects.get(verb="credentials.key_rotated", target_id="acme")
    assert rotated.data == {"credentials": 1, "endpoints": 1, "event_sources": 1, "sso_providers": 0}
    assert TOKEN not in json.dumps(rotated.data)


def test_a_stored_llm_key_wins_over_the_variable_which_still_works(in_acme: Tenant, monkeypatch: Any) -> None:
    connection.set_schema_to_public()
    llm = llm_connection_create(
        name="env-llm", base_url="https://llm.example/v1", api_key_env="ENV_LLM_KEY", allowed_models=["m"], actor=ADMIN
    )
    monkeypatch.setenv("ENV_LLM_KEY", "sk-from-env")
    assert llm_connection_api_key(llm) == "sk-from-env"

    llm_connection_key_set(name="env-llm", api_key="sk-stored", actor=ADMIN)
    stored = LLMConnection.objects.get(name="env-llm")
    assert llm_connection_api_key(stored) == "sk-stored" and "sk-stored" not in stored.api_key_encrypted
    assert "sk-stored" not in _audit_text()
    llm_connection_key_set(name="env-llm", api_key=None, actor=ADMIN)
    assert llm_connection_api_key(LLMConnection.objects.get(name="env-llm")) == "sk-from-env"


def _credential() -> Credential:
    from agents.integrations.services import credential_create

    return credential_create(name="rot-token", kind="bearer", secret=TOKEN, actor=ADMIN)


def _development_key() -> str:
    from config.secrets import _development_key as key

    return key()
