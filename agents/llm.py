"""LLM providers. Blueprints ask for structured output against a JSON schema and get a
validated dict plus token usage and estimated cost.

- ``OfflineProvider``: deterministic, no network, the default without a key. It does real
  (rule and keyword based) work on support text, so demos and tests behave sensibly.
- ``OpenAIProvider``: any OpenAI-compatible endpoint through the official ``openai`` client,
  with JSON-schema structured outputs. Endpoints are operator-defined connections
  (tenants.connections): an agent names a connection and one of its models; the URL, the key's
  environment variable and the timeout come from the connection, never from the agent.

Errors raised here end up in ``task.last_error`` and task events, which tenants read: they
are short and generic, and the provider's answer goes to the worker log only.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings

from agents.exceptions import LLMError
from agents.schemas import schema_errors
from config.connection import connection as db_connection
from governance.context import get_correlation_id
from tenants.connections import LLMConnectionUnavailable, llm_connection_api_key, llm_connection_usable
from tenants.usage import cost_estimate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMResult:
    data: dict[str, Any]
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    latency_ms: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """From the operators' price table (tenants.usage; a model it does not name has a default)."""
    return cost_estimate(model=model, tokens_in=prompt_tokens, tokens_out=completion_tokens)


class Provider(Protocol):
    def structured(self, *, task: str, system: str, user: str, schema: dict[str, Any]) -> LLMResult: ...


# An estimate of what a model's tokenizer would count, for the offline provider (which has none):
# BPE tokenizers cut English into word pieces of about four characters and split punctuation
# and digits off, so a run of letters counts one token per four characters (at least one) and
# every other non-space character one. Rough, but the offline provider's usage is metered,
# priced and limited like a real model's.
_WORDPIECE = re.compile(r"[A-Za-z]+|\S")


def approx_tokens(text: str) -> int:
    count = 0
    for piece in _WORDPIECE.findall(text):
        count += -(-len(piece) // 4) if piece[0].isalpha() else 1
    return max(1, count)


# ---------------------------------------------------------------------------- offline rules
CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "billing": (
        "invoice",
        "refund",
        "charge",
        "charged",
        "payment",
        "billing",
        "price",
        "subscription",
        "credit card",
        "money back",
        "overcharged",
        "receipt",
    ),
    "technical": (
        "error",
        "bug",
        "crash",
        "broken",
        "not working",
        "doesn't work",
        "does not work",
        "500",
        "timeout",
        "slow",
        "fails",
        "failed",
        "exception",
        "cannot connect",
        "outage",
        "down",
    ),
    "account": (
        "password",
        "login",
        "log in",
        "sign in",
        "locked out",
        "account",
        "2fa",
        "username",
        "reset",
        "email change",
    ),
    "shipping": ("delivery", "shipping", "shipped", "package", "parcel", "tracking", "arrive", "courier", "delayed"),
    "feedback": ("suggest", "feature request", "would be nice", "love", "great", "feedback", "idea"),
}
URGENT_WORDS = (
    "urgent",
    "asap",
    "immediately",
    "emergency",
    "critical",
    "production down",
    "outage",
    "right now",
    "lawsuit",
    "legal",
)
NEGATIVE_WORDS = ("angry", "furious", "unacceptable", "terrible", "worst", "frustrated", "cancel my")
ORDER_RE = re.compile(r"\b(?:order|ord)[\s#:-]*([A-Z0-9-]{3,20})\b", re.IGNORECASE)
AMOUNT_RE = re.compile(
    r"(?:(€|\$|£)\s?(\d+(?:[.,]\d{1,2})?))|(?:(\d+(?:[.,]\d{1,2})?)\s?(eur|usd|gbp|€|\$|£))", re.IGNORECASE
)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
CURRENCIES = {"€": "EUR", "$": "USD", "£": "GBP", "eur": "EUR", "usd": "USD", "gbp": "GBP"}


def triage_text(text: str) -> dict[str, Any]:
    """Classify a support ticket: category, priority, confidence, metadata, clarification."""
    lowered = text.lower()
    scores = {cat: sum(1 for word in words if word in lowered) for cat, words in CATEGORY_KEYWORDS.items()}
    best = max(scores, key=lambda c: (scores[c], -list(CATEGORY_KEYWORDS).index(c)))
    hits = scores[best]
    total = sum(scores.values())
    category = best if hits else "general"
    confidence = 0.35 if not hits else round(min(0.97, 0.55 + 0.12 * hits) * (hits / total) ** 0.5, 2)
    urgent = any(word in lowered for word in URGENT_WORDS)
    negative = any(word in lowered for word in NEGATIVE_WORDS)
    priority = (
        "critical"
        if urgent and category == "technical"
        else "high"
        if urgent or negative
        else ("medium" if category in ("billing", "technical", "account") else "low")
    )
    order = ORDER_RE.search(text)
    amount = AMOUNT_RE.search(text)
    email = EMAIL_RE.search(text)
    metadata: dict[str, Any] = {
        "order_id": order.group(1).upper() if order else None,
        "amount": None,
        "currency": None,
        "email": email.group(0) if email else None,
        "sentiment": "negative" if negative else "neutral",
        "wants_refund": any(w in lowered for w in ("refund", "money back", "reimburse")),
    }
    if amount:
        symbol = (amount.group(1) or amount.group(4) or "").lower()
        value = (amount.group(2) or amount.group(3)).replace(",", ".")
        metadata["amount"] = float(value)
        metadata["currency"] = CURRENCIES.get(symbol, "EUR")
    words = len(text.split())
    clarification = words < 4 or (category == "general" and words < 12)
    return {
        "category": category,
        "priority": priority,
        "confidence": confidence,
        "clarification_needed": clarification,
        "metadata": metadata,
        "summary": " ".join(text.split()[:24]),
    }


def resolution_text(ticket: dict[str, Any]) -> dict[str, Any]:
    """Draft a reply, a status and notes for a triaged ticket."""
    category = ticket.get("category", "general")
    meta = ticket.get("metadata") or {}
    greeting = "Hello,\n\n"
    bodies = {
        "billing": "thank you for reaching out about your billing question. We have looked into your account",
        "technical": "thank you for reporting this problem. Our engineers have the details you sent",
        "account": "we can help you get back into your account. Please use the 'Forgot password' link",
        "shipping": "thank you for your patience with your delivery. We have checked with the carrier",
        "feedback": "thank you for the feedback: it goes straight to our product team",
    }
    body = bodies.get(category, "thank you for your message. A member of our team is looking into it")
    if meta.get("wants_refund") and meta.get("amount"):
        body += f" and a refund of {meta['amount']:.2f} {meta.get('currency') or 'EUR'} is being processed"
    status = (
        "pending_refund"
        if meta.get("wants_refund")
        else "resolved"
        if category in ("feedback", "account")
        else "in_progress"
    )
    channel = "finance" if category == "billing" else "engineering" if category == "technical" else "support"
    return {
        "reply": f"{greeting}{body}.\n\nBest regards,\nSupport",
        "status": status,
        "notes": f"{category} ticket, priority {ticket.get('priority', 'medium')}",
        "escalation_channel": channel,
    }


OPS_RULES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("crash", "crashloop", "oom", "out of memory", "unresponsive", "deadlock", "hung"), "restart_service", "high"),
    (("disk full", "disk usage", "no space"), "escalate_to_human", "high"),
    (("latency", "slow", "p99"), "escalate_to_human", "medium"),
    (("certificate", "cert expir"), "escalate_to_human", "high"),
)


def ops_action(event: dict[str, Any]) -> dict[str, Any]:
    """Turn a system event into a proposed action with a risk level."""
    text = " ".join(str(event.get(k, "")) for k in ("kind", "message", "summary")).lower()
    service = str(event.get("service") or "unknown")
    for words, action, risk in OPS_RULES:
        if any(word in text for word in words):
            return {
                "action": action,
                "service": service,
                "risk": risk,
                "reason": f"{event.get('kind') or 'event'} on {service}: {', '.join(w for w in words if w in text)}",
            }
    return {"action": "none", "service": service, "risk": "low", "reason": "no rule matched; informational"}


class OfflineProvider:
    """Deterministic provider: same input, same output, no network."""

    model = "offline"
    handlers = {
        "triage": lambda user: triage_text(user),
        "resolution": lambda user: resolution_text(json.loads(user)),
        "ops": lambda user: ops_action(json.loads(user)),
    }

    def structured(self, *, task: str, system: str, user: str, schema: dict[str, Any]) -> LLMResult:
        started = time.perf_counter()
        if task not in self.handlers:
            raise LLMError(f"the offline provider has no rules for {task!r}")
        data = self.handlers[task](user)
        errors = schema_errors(data, schema)
        if errors:
            raise LLMError(f"offline output failed its schema: {errors}")
        prompt_tokens = approx_tokens(system) + approx_tokens(user)
        completion_tokens = approx_tokens(json.dumps(data))
        return LLMResult(
            data=data,
            model=self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=estimate_cost(self.model, prompt_tokens, completion_tokens),
            latency_ms=(time.perf_counter() - started) * 1000,
        )


def timeout_ceiling() -> float:
    """The longest one LLM call may take: below the step lease (TASK_ACK_TIMEOUT_SECONDS) by a
    margin for the step's own work, so that a slow endpoint fails its step instead of outliving
    the lease, when the sweeper would send the step again and a second attempt would call the
    model while the first still waits."""
    lease = float(settings.TASK_ACK_TIMEOUT_SECONDS)
    return max(0.5, lease - max(1.0, lease / 5))


class OpenAIProvider:
    """Any OpenAI-compatible chat completions endpoint, with JSON-schema structured output.
    ``connection`` names the endpoint in error messages."""

    def __init__(self, *, model: str, api_key: str, base_url: str, timeout: float, connection: str = "openai") -> None:
        from openai import OpenAI

        self.model = model
        self.connection = connection
        # No client-side retries: a failed call fails the step, and the engine retries it with
        # backoff under a fresh lease.
        self.client = OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    def _failed(self, what: str, *, cause: Exception | None = None, **detail: Any) -> LLMError:
        # The cause (with the endpoint's answer) goes to the log; the error, which the task
        # keeps as its last_error for the tenant to read, says only what failed.
        logger.warning(
            "llm.call_failed",
            extra={
                "connection": self.connection,
                "model": self.model,
                "correlation_id": get_correlation_id(),
                **detail,
            },
            exc_info=cause,
        )
        return LLMError(f"the model connection {self.connection!r} {what}; see the worker log")

    def structured(self, *, task: str, system: str, user: str, schema: dict[str, Any]) -> LLMResult:
        import openai

        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": task, "schema": schema, "strict": True},
                },
                temperature=0,
            )
        except openai.APIStatusError as exc:
            raise self._failed(f"failed (HTTP {exc.status_code})", cause=exc, status=exc.status_code) from None
        except openai.OpenAIError as exc:
            raise self._failed(f"failed ({type(exc).__name__})", cause=exc) from None
        content = response.choices[0].message.content or ""
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise self._failed("returned invalid JSON", cause=exc) from None
        errors = schema_errors(data, schema)
        if errors:
            # The paths only: the messages quote the model's output.
            raise self._failed(f"returned output that failed its {task!r} schema", paths=sorted(errors))
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        return LLMResult(
            data=data,
            model=response.model or self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=estimate_cost(self.model, prompt_tokens, completion_tokens),
            latency_ms=(time.perf_counter() - started) * 1000,
        )


def provider_for(model_settings: dict[str, Any], *, schema_name: str | None = None) -> Provider:
    """The agent's provider. ``{"provider": "offline"}`` (or no settings) is the offline
    provider; ``{"connection": name, "model": model}`` is the operator's connection of that
    name, if the tenant (``schema_name``, default the connection's current schema) may use it,
    still offers the model, and the workers have its key. Anything else in the settings is
    ignored. Raises LLMError otherwise: never a silent fallback to another endpoint or to the
    offline provider."""
    if "connection" not in model_settings:
        if model_settings.get("provider", "offline") == "offline":
            return OfflineProvider()
        raise LLMError("the agent's model settings name no model connection; choose one, or the offline provider")
    name = str(model_settings["connection"])[:50]
    try:
        found = llm_connection_usable(name=name, schema_name=schema_name or db_connection.schema_name)
    except LLMConnectionUnavailable as exc:
        raise LLMError(str(exc)) from None
    model = model_settings.get("model")
    if not isinstance(model, str) or model not in found.allowed_models:
        raise LLMError(f"the model connection {name!r} does not offer the agent's model")
    key = llm_connection_api_key(found)  # the stored key, or the worker's variable
    if not key:
        logger.warning("llm.key_missing", extra={"connection": name, "api_key_env": found.api_key_env})
        raise LLMError(f"the model connection {name!r} has no key on this worker; see the worker log")
    return OpenAIProvider(
        model=model,
        api_key=key,
        base_url=found.base_url,
        connection=name,
        timeout=min(found.timeout_seconds, timeout_ceiling()),
    )
