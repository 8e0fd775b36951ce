"""The effect ledger: exactly-once side effects under at-least-once delivery."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agents.exceptions import EffectConflict, ToolError
from agents.models import Effect, Task
from agents.schemas import schema_errors
from agents.tools import ToolSpec
from config.db import prepared_cursor
from governance.hashchain import canonical_json


def arguments_hash(arguments: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(arguments).encode("utf-8")).hexdigest()


def tool_run(*, task: Task, step_index: int, tool: ToolSpec, arguments: dict[str, Any],
             idempotency_key: str) -> tuple[dict[str, Any], bool]:
    """Run ``tool`` once for ``idempotency_key`` inside the caller's transaction.

    A side-effecting tool runs only if no Effect holds the key; otherwise the stored result is
    returned (second value True). The Effect row, its outbox message and the caller's step
    commit together, so a crash before commit leaves no trace and a crash after it leaves the
    key taken. Raises ToolError for invalid arguments and EffectConflict when the key was used
    with other arguments."""
    errors = schema_errors(arguments, tool.args_schema)
    if errors:
        raise ToolError(f"invalid arguments for {tool.name}: {errors}", fields=errors)
    if not tool.has_side_effect:
        return tool.run(arguments).result, False
    digest = arguments_hash(arguments)
    # Our tools only describe their effect; the effect happens when the outbox row commits.
    # So describe first, then claim the key: one round trip when it is free (the usual case).
    outcome = tool.run(arguments)
    kind, payload = outcome.outbox if outcome.outbox is not None else (None, None)
    with prepared_cursor() as cursor:
        # Claim the key and write its outbox message in one statement; on a taken key
        # neither happens (the CTE's INSERT returns no row, so the outbox SELECT is empty).
        cursor.execute(
            "WITH effect AS ("
            " INSERT INTO agents_effect (idempotency_key, task_id, step_index, tool, arguments_hash, result, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id),"
            " outbox AS (INSERT INTO agents_outboxmessage (effect_id, kind, payload, created_at)"
            " SELECT id, %s, %s, now() FROM effect WHERE %s::text IS NOT NULL)"
            " SELECT id FROM effect",
            [idempotency_key, task.pk, step_index, tool.name, digest, json.dumps(outcome.result),
             kind, json.dumps(payload), kind])
        row = cursor.fetchone()
    if row is None:
        existing = Effect.objects.get(idempotency_key=idempotency_key)
        if existing.arguments_hash != digest or existing.tool != tool.name:
            raise EffectConflict(f"idempotency key {idempotency_key} was used for another action",
                                 key=idempotency_key)
        return existing.result, True
    return outcome.result, False
