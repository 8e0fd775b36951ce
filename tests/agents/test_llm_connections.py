"""Agents reach an LLM only through a connection an operator defined: a tenant names the
connection and one of its models, never a URL, an environment variable or a timeout, and
nothing a tenant writes reaches the workers' environment or an outbound address.

The outside world is faked (a local OpenAI-compatible stub, the process environment, the
socket layer); the services, the engine and the openai client run for real.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from django.conf import LazySettings
from django.test import Client

from agents.exceptions import LLMError
from agents.llm import OfflineProvider, OpenAIProvider, provider_for, timeout_ceiling
from agents.models import Agent, AgentConfigVersion, TaskEvent
from agents.services import agent_create, task_submit
from config.connection import connection
from governance.actors import Actor
from governance.models import AuditEvent
from tenants.connections import llm_connection_create, llm_connection_update
from tenants.models import LLMConnection, Tenant
from tests.agents.helpers_execution import (
    TRIAGE_OUTPUT,
    OpenAIStub,
    advance_here,
    chat_completion,
    openai_stub,
    triage_agent,
    use_tenant,
)
from tests.conftest import ALICE, BILLING_TICKET, BOB

from .api_support import signed_in

KEY_ENV = "TEST_LLM_KEY"
OPERATOR = Actor.operator("tester")
AGENTS = "/api/v1/agents/"


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with openai_stub() as running:
        yield running


def connection_add(
    base_url: str = "https://llm.example/v1",
    *,
    name: str = "house",
    tenants: tuple[str, ...] = ("acme",),
    models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o"),
    **extra: Any,
) -> LLMConnection:
    """An operator's connection (public schema); the connection is left on acme's schema."""
    created = llm_connection_create(
        name=name,
        base_url=base_url,
        api_key_env=KEY_ENV,
        allowed_models=list(models),
        tenants=list(tenants),
        actor=OPERATOR,
        **extra,
    )
    use_tenant("acme")
    return created


@pytest.fixture
def alice(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, ALICE)


def _create(client: Client, model_settings: Any, name: str = "front-desk") -> Any:
    return client.post(
        AGENTS, {"name": name, "blueprint": "triage", "model_settings": model_settings}, content_type="application/json"
    )


def _fields(response: Any) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"code", "detail", "extra"}
    return dict(body["extra"]["fields"])


def _agents_in_acme() -> list[str]:
    use_tenant("acme")
    return list(Agent.objects.values_list("name", flat=True))


# ------------------------------------------------------------------------------ what a tenant may write
@pytest.mark.parametrize("key", ["base_url", "api_key_env", "timeout", "headers"])
def test_the_api_refuses_a_url_a_key_variable_a_timeout_or_any_unknown_key_in_model_settings(
    alice: Client, key: str
) -> None:
    connection_add()
    before = _agents_in_acme()

    response = _create(alice, {"connection": "house", "model": "gpt-4o-mini", key: "http://169.254.169.254/x"})

    assert response.status_code == 400
    fields = _fields(response)
    assert list(fields) == [f"model_settings.{key}"]
    assert fields[f"model_settings.{key}"].startswith("not allowed: name a connection")
    assert _agents_in_acme() == before


def test_the_old_openai_settings_with_a_url_and_a_key_variable_are_refused_field_by_field(alice: Client) -> None:
    response = _create(
        alice,
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "DATABASE_URL",
        },
    )

    assert response.status_code == 400
    assert set(_fields(response)) == {
        "model_settings.provider",
        "model_settings.base_url",
        "model_settings.api_key_env",
    }
    assert "front-desk" not in _agents_in_acme()


def test_changing_an_agent_to_settings_with_a_url_is_refused_and_keeps_its_version(alice: Client) -> None:
    connection_add()
    agent = triage_agent(model_settings={"connection": "house", "model": "gpt-4o-mini"})

    response = alice.patch(
        f"{AGENTS}{agent.name}/",
        {"model_settings": {"connection": "house", "model": "gpt-4o-mini", "base_url": "http://attacker.example/v1"}},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert list(_fields(response)) == ["model_settings.base_url"]
    use_tenant("acme")
    stored = Agent.objects.get(pk=agent.pk)
    assert (stored.version, stored.model_settings) == (1, {"connection": "house", "model": "gpt-4o-mini"})
    assert AgentConfigVersion.objects.filter(agent=agent).count() == 1


def test_the_tenant_admin_refuses_a_url_in_model_settings_and_saves_nothing(alice: Client) -> None:
    before = _agents_in_acme()

    response = alice.post(
        "/admin/agents/agent/add/",
        {
            "name": "from-admin",
            "blueprint": "triage",
            "config": "{}",
            "privilege_ceiling": 2,
            "automation_level": "semi_auto",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
            "model_settings": json.dumps(
                {"provider": "offline", "base_url": "http://attacker.example/v1", "api_key_env": "VIGIL_SECRET_KEY"}
            ),
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["model_settings"]
    assert [e.split(":")[0] for e in errors] == ["model_settings.base_url", "model_settings.api_key_env"]
    assert _agents_in_acme() == before


def test_a_connection_granted_to_another_tenant_is_refused_like_one_that_does_not_exist(alice: Client) -> None:
    connection_add(name="beta-only", tenants=("beta",))

    refused = _create(alice, {"connection": "beta-only", "model": "gpt-4o-mini"})
    missing = _create(alice, {"connection": "nowhere", "model": "gpt-4o-mini"})

    assert (refused.status_code, missing.status_code) == (400, 400)
    unavailable = "no LLM connection {!r} is available to this tenant"
    assert _fields(refused) == {"model_settings.connection": unavailable.format("beta-only")}
    assert _fields(missing) == {"model_settings.connection": unavailable.format("nowhere")}
    assert "front-desk" not in _agents_in_acme()


def test_a_disabled_connection_is_refused(alice: Client) -> None:
    connection_add(enabled=False)

    response = _create(alice, {"connection": "house", "model": "gpt-4o-mini"})

    assert response.status_code == 400
    assert _fields(response) == {"model_settings.connection": "the LLM connection 'house' is disabled"}


def test_a_model_the_connection_does_not_offer_is_refused_naming_the_choices(alice: Client) -> None:
    connection_add()

    response = _create(alice, {"connection": "house", "model": "o1-pro"})

    assert response.status_code == 400
    assert _fields(response) == {
        "model_settings.model": "'o1-pro' is not offered by 'house'; choose one of gpt-4o-mini, gpt-4o"
    }


def test_a_connection_needs_a_model_and_a_model_needs_a_connection(alice: Client) -> None:
    connection_add()

    no_model = _create(alice, {"connection": "house"})
    no_connection = _create(alice, {"provider": "offline", "model": "gpt-4o"})

    assert _fields(no_model) == {"model_settings.model": "this field is required: one of gpt-4o-mini, gpt-4o"}
    assert _fields(no_connection) == {"model_settings.model": "needs a connection"}


def test_an_agent_names_a_connection_granted_to_its_tenant_and_one_of_its_models(alice: Client) -> None:
    connection_add()

    response = _create(alice, {"connection": "house", "model": "gpt-4o"})

    assert response.status_code == 201, response.content
    assert response.json()["model_settings"] == {"connection": "house", "model": "gpt-4o"}


def test_a_connection_available_to_all_serves_every_tenant(beta: Tenant, beta_client: Client) -> None:
    connection_add(name="shared", tenants=(), available_to_all=True)

    response = _create(signed_in(beta_client, beta, BOB), {"connection": "shared", "model": "gpt-4o-mini"})

    assert response.status_code == 201, response.content


# ------------------------------------------------------------------------------ what the worker does with it
def test_provider_for_builds_the_client_from_the_connection_with_the_key_of_its_variable(
    in_acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection_add("https://llm.example/v1")
    monkeypatch.setenv(KEY_ENV, "sk-operator")

    provider = provider_for({"connection": "house", "model": "gpt-4o"})

    assert isinstance(provider, OpenAIProvider)
    assert str(provider.client.base_url) == "https://llm.example/v1/"
    assert provider.client.api_key == "sk-operator"
    assert provider.model == "gpt-4o"


def test_the_offline_provider_stays_the_default() -> None:
    assert isinstance(provider_for({}), OfflineProvider)
    assert isinstance(provider_for({"provider": "offline"}), OfflineProvider)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"enabled": False}, "the LLM connection 'house' is disabled"),
        ({"tenants": ["beta"]}, "no LLM connection 'house' is available to this tenant"),
        ({"allowed_models": ["gpt-4o"]}, "the model connection 'house' does not offer the agent's model"),
        (
            {"api_key_env": "TEST_UNSET_LLM_KEY"},
            "the model connection 'house' has no key on this worker; see the worker log",
        ),
    ],
    ids=["disabled", "revoked", "model-withdrawn", "key-missing"],
)
def test_a_connection_that_changed_since_the_agent_named_it_fails_the_step_instead_of_falling_back(
    in_acme: Tenant, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], message: str
) -> None:
    connection_add()
    monkeypatch.setenv(KEY_ENV, "sk-operator")
    monkeypatch.delenv("TEST_UNSET_LLM_KEY", raising=False)
    agent = triage_agent(model_settings={"connection": "house", "model": "gpt-4o-mini"})
    llm_connection_update(name="house", actor=OPERATOR, **change)
    use_tenant("acme")

    with pytest.raises(LLMError) as refused:
        provider_for(agent.model_settings)
    assert str(refused.value) == message

    task = task_submit(agent_name=agent.name, input=BILLING_TICKET)
    assert advance_here(task.pk) == "retry"
    task.refresh_from_db()
    assert (task.state, task.last_error) == ("retrying", f"LLMError: {message}")
    assert not task.steps.exists()


def test_stored_settings_of_the_old_shape_fail_the_step_and_are_never_followed(in_acme: Tenant) -> None:
    agent = triage_agent()
    Agent.objects.filter(pk=agent.pk).update(
        model_settings={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "PATH",
        }
    )

    with pytest.raises(LLMError, match="name no model connection"):
        provider_for(Agent.objects.get(pk=agent.pk).model_settings)


def test_the_call_timeout_is_capped_below_the_step_lease(
    in_acme: Tenant, settings: LazySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection_add(timeout_seconds=600)
    monkeypatch.setenv(KEY_ENV, "sk-operator")

    for lease in (4, 30, 300):
        settings.TASK_ACK_TIMEOUT_SECONDS = lease
        provider = provider_for({"connection": "house", "model": "gpt-4o"})
        assert isinstance(provider, OpenAIProvider)
        assert provider.client.timeout == timeout_ceiling() <= lease - 1
    llm_connection_update(name="house", actor=OPERATOR, timeout_seconds=2)
    use_tenant("acme")
    provider = provider_for({"connection": "house", "model": "gpt-4o"})
    assert isinstance(provider, OpenAIProvider) and provider.client.timeout == 2


def test_a_slow_endpoint_fails_the_call_before_the_lease_runs_out(
    in_acme: Tenant, stub: OpenAIStub, settings: LazySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.TASK_ACK_TIMEOUT_SECONDS = 3
    connection_add(stub.base_url, timeout_seconds=60)
    monkeypatch.setenv(KEY_ENV, "sk-operator")

    def slow(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        time.sleep(3.5)
        return 200, chat_completion(json.dumps(TRIAGE_OUTPUT))

    stub.reply = slow
    provider = provider_for({"connection": "house", "model": "gpt-4o-mini"})
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"^the model connection 'house' failed \(APITimeoutError\)"):
        provider.structured(task="triage", system="s", user="u", schema={"type": "object"})
    assert time.monotonic() - started < 3


def test_a_provider_error_body_never_reaches_the_task_and_goes_to_the_log(
    in_acme: Tenant, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-live-0123456789abcdef DATABASE_URL=postgres://app:hunter2@db/vigil"
    stub.reply = lambda body: (500, {"error": {"message": secret, "type": "server_error"}})
    connection_add(stub.base_url)
    monkeypatch.setenv(KEY_ENV, "sk-operator")
    task = task_submit(
        agent_name=triage_agent(model_settings={"connection": "house", "model": "gpt-4o-mini"}).name,
        input=BILLING_TICKET,
    )

    with caplog.at_level(logging.WARNING, logger="agents.llm"):
        assert advance_here(task.pk) == "retry"

    task.refresh_from_db()
    assert task.last_error == "LLMError: the model connection 'house' failed (HTTP 500); see the worker log"
    stored = [
        task.last_error,
        *TaskEvent.objects.filter(task=task).values_list("reason", flat=True),
        *(json.dumps(e.data) for e in AuditEvent.objects.filter(target_type="task", target_id=str(task.pk))),
    ]
    assert not [text for text in stored if "hunter2" in text or "sk-live" in text]
    [logged] = [r for r in caplog.records if r.getMessage() == "llm.call_failed"]
    assert (logged.connection, logged.status) == ("house", 500)  # type: ignore[attr-defined]
    assert logged.exc_info is not None and "hunter2" in str(logged.exc_info[1])
    assert len(stub.requests) == 1


# ------------------------------------------------------------------------------ the canary test
CANARY = "canary7q3z"


class RecordingEnviron(MutableMapping[str, str]):
    """os.environ, remembering every name looked up (get, [], in, getenv)."""

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self.real = real
        self.looked_up: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.looked_up.append(os.fsdecode(key))  # some libraries ask with bytes
        return self.real[key]

    def __setitem__(self, key: str, value: str) -> None:
        self.real[key] = value

    def __delitem__(self, key: str) -> None:
        del self.real[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.real)

    def __len__(self) -> int:
        return len(self.real)

    # Enumerating is not looking a name up (proxy discovery reads every variable this way).
    def items(self) -> Any:
        return self.real.items()

    def values(self) -> Any:
        return self.real.values()

    def copy(self) -> dict[str, str]:
        return dict(self.real)


@pytest.fixture
def outbound(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name resolved and every address connected to from this process, at the
    socket layer (where any HTTP client ends up)."""
    seen: list[str] = []
    resolve, connect = socket.getaddrinfo, socket.socket.connect

    def recording_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"resolve {host}:{port}")
        return resolve(host, port, *args, **kwargs)

    def recording_connect(sock: socket.socket, address: Any) -> None:
        seen.append(f"connect {address}")
        connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    return seen


def test_no_tenant_writable_field_reaches_the_environment_or_an_outbound_address(
    in_acme: Tenant, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch, outbound: list[str]
) -> None:
    # The operator's connection and model carry the canary too: a tenant types those names.
    connection_add(stub.base_url, name=f"{CANARY}-conn", models=(f"{CANARY}-model",))
    monkeypatch.setenv(KEY_ENV, "sk-operator")
    for name in (CANARY, CANARY.upper(), f"{CANARY.upper()}_KEY"):
        monkeypatch.setenv(name, "a secret a canary could fetch")
    agent = agent_create(
        name=f"{CANARY}-agent",
        blueprint="triage",
        description=f"{CANARY} description",
        config={"system_prompt": f"{CANARY} prompt", "auto_reply": True},
        model_settings={"connection": f"{CANARY}-conn", "model": f"{CANARY}-model"},
    )
    task = task_submit(
        agent_id=agent.pk,
        input={
            "text": f"My invoice shows a double charge {CANARY}",
            "customer_email": f"{CANARY}@example.com",
            "subject": f"http://{CANARY}.example/",
        },
    )
    # Settings stored before this design (or written around the services) carry a URL, a key
    # variable and a timeout: they must be ignored, not followed.
    Agent.objects.filter(pk=agent.pk).update(
        model_settings={
            "connection": f"{CANARY}-conn",
            "model": f"{CANARY}-model",
            "base_url": f"http://{CANARY}.example/v1",
            "api_key_env": f"{CANARY.upper()}_KEY",
            "timeout": 0.001,
            "provider": f"{CANARY}",
        }
    )
    environ = RecordingEnviron(os.environ)
    monkeypatch.setattr(os, "environ", environ)

    provider = provider_for(Agent.objects.get(pk=agent.pk).model_settings)
    assert advance_here(task.pk) == "stepped"

    assert isinstance(provider, OpenAIProvider)
    assert str(provider.client.base_url) == f"{stub.base_url}/" and provider.client.timeout == 20
    assert KEY_ENV in environ.looked_up
    assert [name for name in environ.looked_up if CANARY in name.lower()] == []
    stub_address = stub.base_url.split("/")[2]
    assert outbound and [line for line in outbound if CANARY in line.lower()] == []
    assert {line for line in outbound if line.startswith("resolve")} == {f"resolve {stub_address}"}
    [request] = stub.requests  # the step's call; provider_for itself sends nothing
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["host"] == stub_address
    assert request["headers"]["authorization"] == "Bearer sk-operator"
    assert CANARY not in json.dumps(request["headers"]).lower()
    # The canaries were in play: the ticket went to the model as the prompt, as it should.
    assert CANARY in json.dumps(request["body"])
    assert connection.schema_name == "acme"
