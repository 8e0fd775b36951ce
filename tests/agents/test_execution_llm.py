"""The OpenAI provider through the real ``openai`` client against a local OpenAI-compatible
HTTP server (the outside world is faked, not our code): structured output, token usage and
cost, refusals of bad output, and a whole task on a real worker.
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
from governance.models import AuditEvent
from tests.agents.helpers_execution import (BILLING_TICKET, FINAL, STUB_USAGE, TRIAGE_OUTPUT, OpenAIStub, StartWorker,
                                            chat_completion, only_our_workers, openai_stub, steps_of, triage_agent,
                                            use_tenant, wait_for_state, worker_start)

__all__ = ["only_our_workers", "worker_start"]  # fixtures used by the tests below


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with openai_stub() as running:
        yield running


def _provider(stub: OpenAIStub) -> OpenAIProvider:
    return OpenAIProvider(model="gpt-4o-mini", api_key="sk-test-provider", base_url=stub.base_url, timeout=5)


def _ask(provider: Provider) -> LLMResult:
    return provider.structured(task="triage", system="You triage tickets.", user="double charge on my invoice",
                               schema=TRIAGE_SCHEMA)


def test_openai_provider_returns_the_structured_output_with_token_usage_and_cost(stub: OpenAIStub) -> None:
    result = _ask(_provider(stub))

    assert result.data == TRIAGE_OUTPUT
    assert (result.prompt_tokens, result.completion_tokens, result.tokens) == (1200, 300, 1500)
    assert result.cost_usd == estimate_cost("gpt-4o-mini", 1200, 300) == Decimal("0.00036")
    assert result.model == "stub-model-1"
    assert result.latency_ms > 0


def test_openai_provider_asks_for_strict_json_schema_output_with_the_agents_key(stub: OpenAIStub) -> None:
    _ask(_provider(stub))

    [request] = stub.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test-provider"
    body = request["body"]
    assert (body["model"], body["temperature"]) == ("gpt-4o-mini", 0)
    assert body["messages"] == [{"role": "system", "content": "You triage tickets."},
                                {"role": "user", "content": "double charge on my invoice"}]
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "triage", "schema": TRIAGE_SCHEMA, "strict": True}}


def test_openai_provider_refuses_content_that_is_not_json(stub: OpenAIStub) -> None:
    stub.reply = lambda body: (200, chat_completion("Sure! The category is billing."))

    with pytest.raises(LLMError, match="returned invalid JSON") as refused:
        _ask(_provider(stub))
    assert refused.value.status == 502


def test_openai_provider_refuses_json_that_violates_the_schema(stub: OpenAIStub) -> None:
    stub.reply = lambda body: (200, chat_completion(json.dumps({**TRIAGE_OUTPUT, "category": "spam"})))

    with pytest.raises(LLMError, match="output failed its schema"):
        _ask(_provider(stub))


def test_openai_provider_turns_an_api_error_into_llm_error(stub: OpenAIStub) -> None:
    stub.reply = lambda body: (401, {"error": {"message": "invalid key", "type": "invalid_request_error"}})

    with pytest.raises(LLMError, match="AuthenticationError"):
        _ask(_provider(stub))


def test_provider_for_uses_openai_only_when_the_named_key_is_in_the_environment(
        stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> None:
    model_settings = {"provider": "openai", "model": "gpt-4o-mini", "base_url": stub.base_url,
                      "api_key_env": "VIGIL_TEST_KEY"}
    monkeypatch.delenv("VIGIL_TEST_KEY", raising=False)
    assert isinstance(provider_for(model_settings), OfflineProvider)

    monkeypatch.setenv("VIGIL_TEST_KEY", "sk-test-env")
    provider = provider_for(model_settings)

    assert isinstance(provider, OpenAIProvider)
    assert _ask(provider).data == TRIAGE_OUTPUT
    assert stub.requests[-1]["headers"]["authorization"] == "Bearer sk-test-env"


def test_a_triage_agent_on_an_openai_compatible_endpoint_runs_on_a_worker_and_records_its_tokens(
        committed: None, stub: OpenAIStub, worker_start: StartWorker) -> None:
    use_tenant("acme")
    agent = triage_agent(model_settings={"provider": "openai", "model": "gpt-4o-mini", "base_url": stub.base_url,
                                         "api_key_env": "VIGIL_TEST_KEY"})
    worker_start(env={"VIGIL_TEST_KEY": "sk-test-worker"})

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
    step_event = AuditEvent.objects.get(verb="agent.step", target_type="task", target_id=str(done.pk),
                                        data__action="classify")
    assert step_event.data == {"index": 0, "action": "classify", "decision": "record", "model": "stub-model-1",
                               "tokens": 1500, "cost_usd": "0.00036"}
    [request] = stub.requests
    assert request["headers"]["authorization"] == "Bearer sk-test-worker"
    assert request["body"]["messages"][1]["content"] == BILLING_TICKET["text"]
