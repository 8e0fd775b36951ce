"""The effect ledger: exactly-once side effects under at-least-once delivery.

A side-effecting tool only describes its effect; the step statement (agents.statements)
writes that description as an Effect row, which takes the step's idempotency key, and the
outbox message that carries it out, together with the step. A description that is never
written (a stale message, a rolled-back step) did nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agents.exceptions import ToolError
from agents.schemas import schema_errors
from agents.tools import ToolSpec
from governance.hashchain import canonical_json


def arguments_hash(arguments: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(arguments).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PlannedEffect:
    """A side effect as its tool described it, not yet written: the Effect row that takes
    its idempotency key and the outbox message that carries it out."""

    idempotency_key: str
    tool: str
    arguments_hash: str
    result: dict[str, Any]
    outbox_kind: str | None
    outbox_payload: Any

    def params(self) -> dict[str, Any]:
        """The effect's parameters of ``agents.statements.STEP_WITH_EFFECT``."""
        return {
            "effect_key": self.idempotency_key,
            "effect_tool": self.tool,
            "effect_arguments_hash": self.arguments_hash,
            "effect_result": json.dumps(self.result),
            "outbox_kind": self.outbox_kind,
            "outbox_payload": json.dumps(self.outbox_payload),
        }


def effect_plan(
    *, tool: ToolSpec, arguments: dict[str, Any], idempotency_key: str
) -> tuple[dict[str, Any], PlannedEffect | None]:
    """Check ``arguments`` and run ``tool``: its result, and the effect to write for it
    (None for a tool without side effects). Raises ToolError for invalid arguments."""
    errors = schema_errors(arguments, tool.args_schema)
    if errors:
        raise ToolError(f"invalid arguments for {tool.name}: {errors}", fields=errors)
    outcome = tool.run(arguments)
    if not tool.has_side_effect:
        return outcome.result, None
    kind, payload = outcome.outbox if outcome.outbox is not None else (None, None)
    return outcome.result, PlannedEffect(
        idempotency_key=idempotency_key,
        tool=tool.name,
        arguments_hash=arguments_hash(arguments),
        result=outcome.result,
        outbox_kind=kind,
        outbox_payload=payload,
    )
