"""What a blueprint is: agent behaviour as code. The engine asks ``plan`` for the next
decision, runs tool decisions through the effect ledger itself, asks ``execute_step`` for the
result of the blueprint's own (non-tool) steps, and stops when ``should_continue`` says so."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agents.llm import LLMResult, Provider


@dataclass(frozen=True)
class StepView:
    index: int
    action: str
    arguments: dict[str, Any]
    result: Any
    decision: str  # allow | approved | rejected | denied | record


@dataclass(frozen=True)
class StepContext:
    """What a blueprint knows of its task: the input, and of the steps so far how many there
    are and the latest of each action (the engine loads no more, so a step of a long task
    costs what an early one does)."""

    agent: str
    task_input: dict[str, Any]
    config: dict[str, Any]
    latest: tuple[StepView, ...]  # the latest step of each action, oldest first
    count: int  # steps so far

    def step(self, action: str) -> StepView | None:
        """The latest step that took this action."""
        return next((s for s in self.latest if s.action == action), None)


@dataclass(frozen=True)
class Decision:
    kind: str  # "tool" | "record" | "finish" | "escalate"
    action: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    llm: LLMResult | None = None
    output: dict[str, Any] | None = None

    @classmethod
    def tool(cls, name: str, arguments: dict[str, Any], reasoning: str = "") -> Decision:
        return cls(kind="tool", action=name, arguments=arguments, reasoning=reasoning)

    @classmethod
    def record(cls, action: str, llm: LLMResult, reasoning: str = "") -> Decision:
        return cls(kind="record", action=action, llm=llm, reasoning=reasoning)

    @classmethod
    def finish(cls, output: dict[str, Any]) -> Decision:
        return cls(kind="finish", output=output)

    @classmethod
    def escalate(cls, reason: str, output: dict[str, Any] | None = None) -> Decision:
        return cls(kind="escalate", reasoning=reason, output=output)


class BaseAgent:
    name: ClassVar[str]
    description: ClassVar[str]
    default_config: ClassVar[dict[str, Any]]
    config_schema: ClassVar[dict[str, Any]]
    input_schema: ClassVar[dict[str, Any]]
    output_schema: ClassVar[dict[str, Any]]
    tools: ClassVar[tuple[str, ...]]

    def __init__(self, *, config: dict[str, Any], provider: Provider) -> None:
        self.config = {**self.default_config, **config}
        self.provider = provider

    def plan(self, ctx: StepContext) -> Decision:
        raise NotImplementedError

    def execute_step(self, decision: Decision, ctx: StepContext) -> dict[str, Any]:
        """The result of a non-tool step: by default, the LLM's structured output."""
        return dict(decision.llm.data) if decision.llm else {}

    def should_continue(self, ctx: StepContext) -> bool:
        return ctx.count < int(self.config.get("max_iterations", 10))

    def ask(self, task: str, user: str | dict[str, Any], schema: dict[str, Any]) -> LLMResult:
        text = user if isinstance(user, str) else json.dumps(user, sort_keys=True)
        return self.provider.structured(
            task=task, system=self.config.get("system_prompt", ""), user=text, schema=schema
        )
