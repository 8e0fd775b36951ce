"""What binds a decision to an action: the hash of the tool, its canonical arguments and the
tenant's schema (F-HITL-7). Recomputed by the approver's service and again by the worker
just before it executes."""

from __future__ import annotations

import hashlib
from typing import Any

from governance.hashchain import canonical_json


def action_hash(*, tool: str, arguments: dict[str, Any], schema: str) -> str:
    return hashlib.sha256(
        canonical_json({"tool": tool, "arguments": arguments, "schema": schema}).encode("utf-8")
    ).hexdigest()
