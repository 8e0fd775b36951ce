"""The OpenAI provider through the real ``openai`` client against a local OpenAI-compatible
HTTP server (the outside world is faked, not our code): structured output, token usage and
cost, refusals of bad output, and a whole task on a real worker through an operator's
connection that points at the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest

from agents.blueprints.triage import ACKNOWLEDGEMENTS, TRIAGE_SCHEMA
from agents.exceptions import LLMError
from agents.llm import LLMResult, OfflineProvider, OpenAIProvider, Provider, estimate_cost, provider_for
from agents.models import OutboxMessage
from agents.services import task_submit
from governance.actors import Actor
from governance.models import AuditEvent
from tenants.connections import llm_connection_create
from tenants.models import Tenant
from tests.agents.helpers_execution import (
    FINAL,
    STUB_USAGE,
    TRIAGE_OUTPUT,
    OpenAIStub,
    StartWorker,
    chat_completion,
    only_our_workers,
    openai_stub,
    steps_of,
    triage_agent,
    unique,
    use_tenant,
    wait_for_state,
    worker_start,
)
from tests.conftest import BILLING_TICKET

__all__ = ["only_our_workers", "worker_start"]  # fixtures used by the tests below


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with openai_stub() as running:
        yield running


def _provider(stub: OpenAIStub) -> OpenAIProvider:
    return OpenAIProvider(
        model="gpt-4o-mini", api_key="sk-test-provider", base_url=stub.base_url, timeout=5, connection="stub"
    )


def _connection_to(stub: OpenAIStub) -> dict[str, str]:
    """An operator's connection to the stub, granted to acme; returns an agent's model settings
    naming it (the connection is left on acme's schema)."""
    name = unique("stub")
    llm_connection_create(
        name=name,
        base_url=stub.base_url,
        api_key_env="LLM_TEST_KEY",
        allowed_models=["gpt-4o-mini"],
        tenants=["acme"],
        actor=Actor.operator("tester"),
    )
    use_tenant("acme")
    return {"connection": name, "model": "gpt-4o-mini"}


def _ask(provider: Provider) -> LLMResult:
    return provider.structured(
        task="triage", system="You triage tickets.", user="double charge on my invoice", schema=TRIAGE_SCHEMA
    )


def test_openai_provider_returns_the_structured_output_with_token_usage_and_cost(
    db: None, stub: OpenAIStub
) -> None:  # the price table is read
    result = _ask(_provider(stub))

    assert result.data == TRIAGE_OUTPUT
    assert (result.prompt_tokens, result.completion_tokens, result.tokens) == (1200, 300, 1500)
    assert result.cost_usd == estimate_cost("gpt-4o-mini", 1200, 300) == Decimal("0.00036")
    assert result.model == "stub-model-1"
    assert result.latency_ms > 0


def test_openai_provider_asks_for_strict_json_schema_output_with_the_agents_key(
    db: None, stub: OpenAIStub
) -> None:  # the price table is read
    _ask(_provider(stub))

    [request] = stub.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test-provider"
    body = request["body"]
    assert (body["model"], body["temperature"]) == ("gpt-4o-mini", 0)
    assert body["messages"] == [
        {"role": "system", "content": "You triage tickets."},
        {"role": "user", "content": "double charge on my invoice"},
    ]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "triage", "schema": TRIAGE_SCHEMA, "strict": True},
    }


def test_openai_provider_refuses_content_that_is_not_json_without_quoting_it(
    db: None, stub: OpenAIStub
) -> None:  # the price table is read
    stub.reply = lambda body: (200, chat_completion("Sure! The category is billing."))

    with pytest.raises(LLMError) as refused:
        _ask(_provider(stub))
    assert str(refused.value) == "the model connection 'stub' returned invalid JSON; see the worker log"
    assert refused.value.status == 502


def test_openai_provider_refuses_json_that_violates_the_schema_without_quoting_it(
    db: None, stub: OpenAIStub
) -> None:  # the price table is read
    stub.reply = lambda body: (200, chat_completion(json.dumps({**TRIAGE_OUTPUT, "category": "spam"})))

    with pytest.raises(LLMError) as refused:
        _ask(_provider(stub))
    assert str(refused.value) == (
        "the model connection 'stub' returned output that failed its 'triage' schema; see the worker log"
    )


def test_openai_provider_turns_an_api_error_into_a_short_llm_error(
    db: None, stub: OpenAIStub
) -> None:  # the price table is read
    stub.reply = lambda body: (401, {"error": {"message": "invalid key sk-abc", "type": "invalid_request_error"}})

    with pytest.raises(LLMError) as refused:
        _ask(_provider(stub))
    assert str(refused.value) == "the model connection 'stub' failed (HTTP 401); see the worker log"


def test_provider_for_uses_the_connection_only_when_its_key_is_in_the_environment(
    in_acme: Tenant, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_settings = _connection_to(stub)
    monkeypatch.delenv("LLM_TEST_KEY", raising=False)
    with pytest.raises(LLMError, match="has no key on this worker"):
        provider_for(model_settings)

    monkeypatch.setenv("LLM_TEST_KEY", "sk-test-env")
    provider = provider_for(model_settings)

    assert isinstance(provider, OpenAIProvider)
    assert _ask(provider).data == TRIAGE_OUTPUT
    assert stub.requests[-1]["headers"]["authorization"] == "Bearer sk-test-env"
    assert isinstance(provider_for({"provider": "offline"}), OfflineProvider)


def test_a_triage_agent_on_an_openai_compatible_endpoint_runs_on_a_worker_and_records_its_tokens(
    committed: None, stub: OpenAIStub, worker_start: StartWorker
) -> None:
    agent = triage_agent(model_settings=_connection_to(stub))
    worker_start(env={"LLM_TEST_KEY": "sk-test-worker"})

    task = task_submit(agent_name=agent.name, input=BILLING_TICKET)

    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified", done.last_error
    assert done.output == TRIAGE_OUTPUT
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    classify = done.steps.get(action="classify")
    assert classify.result == TRIAGE_OUTPUT
    assert classify.tokens == STUB_USAGE["total_tokens"] > 0
    assert classify.cost_usd == Decimal("0.00036")
    assert classify.latency_ms > 0
    reply = OutboxMessage.objects.get(effect__task=done)
    assert reply.payload["body"] == ACKNOWLEDGEMENTS["billing"]
    step_event = AuditEvent.objects.get(
        verb="agent.step", target_type="task", target_id=str(done.pk), data__action="classify"
    )
    assert step_event.data == {
        "index": 0,
        "action": "classify",
        "decision": "record",
        "model": "stub-model-1",
        "tokens": 1500,
        "cost_usd": "0.00036",
    }
    [request] = stub.requests
    assert request["headers"]["authorization"] == "Bearer sk-test-worker"
    assert request["body"]["messages"][1]["content"] == BILLING_TICKET["text"]
