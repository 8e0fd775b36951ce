"""The effect ledger: exactly-once side effects under at-least-once delivery."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agents.exceptions import EffectConflict, ToolError
from agents.models import Effect, Task
from agents.schemas import schema_errors
from agents.tools import ToolSpec
from config.db import prepared_cursor
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
        """Named parameters of ``EFFECT_INSERT_SQL`` (and of the step statement in agents.engine)."""
        return {"effect_key": self.idempotency_key, "effect_tool": self.tool,
                "effect_arguments_hash": self.arguments_hash, "effect_result": json.dumps(self.result),
                "outbox_kind": self.outbox_kind, "outbox_payload": json.dumps(self.outbox_payload)}


def effect_plan(*, tool: ToolSpec, arguments: dict[str, Any],
                idempotency_key: str) -> tuple[dict[str, Any], PlannedEffect | None]:
    """Check ``arguments`` and run ``tool``: its result, and the effect to write for it
    (None for a tool without side effects). Raises ToolError for invalid arguments.

    Our tools only describe their effect; the effect happens when the outbox row commits. So
    a description that is never written (a stale message, a rolled-back step) did nothing."""
    errors = schema_errors(arguments, tool.args_schema)
    if errors:
        raise ToolError(f"invalid arguments for {tool.name}: {errors}", fields=errors)
    outcome = tool.run(arguments)
    if not tool.has_side_effect:
        return outcome.result, None
    kind, payload = outcome.outbox if outcome.outbox is not None else (None, None)
    return outcome.result, PlannedEffect(idempotency_key=idempotency_key, tool=tool.name,
                                         arguments_hash=arguments_hash(arguments), result=outcome.result,
                                         outbox_kind=kind, outbox_payload=payload)


def effect_ctes(*, source: str, on_conflict: str = "") -> str:
    """The WITH entries ``effect`` and ``outbox`` that write a PlannedEffect (named
    parameters: ``PlannedEffect.params()`` and ``%(index)s``) for the task id in the
    ``task_id`` column of ``source``. The outbox row is written only with the effect row (it
    selects from it) and only when the tool described a message; ``effect`` returns the new
    row's id and task_id."""
    return (
        "effect AS (INSERT INTO agents_effect (idempotency_key, task_id, step_index, tool, arguments_hash, result,"
        " created_at) SELECT %(effect_key)s, task_id, %(index)s, %(effect_tool)s, %(effect_arguments_hash)s,"
        f" %(effect_result)s::jsonb, now() FROM {source} {on_conflict} RETURNING id, task_id),"
        " outbox AS (INSERT INTO agents_outboxmessage (effect_id, kind, payload, created_at)"
        " SELECT id, %(outbox_kind)s::text, %(outbox_payload)s::jsonb, now() FROM effect"
        " WHERE %(outbox_kind)s::text IS NOT NULL)"
    )


# Claim the key and write its outbox message in one statement; on a taken key neither
# happens (the effect INSERT returns no row, so the outbox SELECT is empty).
EFFECT_INSERT_SQL = ("WITH " + effect_ctes(source="(SELECT %(task_id)s::bigint AS task_id) AS given",
                                           on_conflict="ON CONFLICT (idempotency_key) DO NOTHING")
                     + " SELECT id FROM effect")


def tool_run(*, task: Task, step_index: int, tool: ToolSpec, arguments: dict[str, Any],
             idempotency_key: str) -> tuple[dict[str, Any], bool]:
    """Run ``tool`` once for ``idempotency_key`` inside the caller's transaction.

    A side-effecting tool runs only if no Effect holds the key; otherwise the stored result is
    returned (second value True). The Effect row, its outbox message and the caller's step
    commit together, so a crash before commit leaves no trace and a crash after it leaves the
    key taken. Raises ToolError for invalid arguments and EffectConflict when the key was used
    with other arguments."""
    result, effect = effect_plan(tool=tool, arguments=arguments, idempotency_key=idempotency_key)
    if effect is None:
        return result, False
    with prepared_cursor() as cursor:
        cursor.execute(EFFECT_INSERT_SQL, {"task_id": task.pk, "index": step_index, **effect.params()})
        row = cursor.fetchone()
    if row is None:
        existing = Effect.objects.get(idempotency_key=idempotency_key)
        if existing.arguments_hash != effect.arguments_hash or existing.tool != tool.name:
            raise EffectConflict(f"idempotency key {idempotency_key} was used for another action",
                                 key=idempotency_key)
        return existing.result, True
    return result, False
