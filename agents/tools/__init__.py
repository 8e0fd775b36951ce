"""Tools agents call. Each is code registered under a name, with a privilege level, an
argument schema and whether it has a side effect; `Tool` rows in each schema mirror the
registry (tools_sync) so admins can grant them to agents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.models import PrivilegeLevel


@dataclass(frozen=True)
class ToolResult:
    result: dict[str, Any]
    # (kind, payload) written to the outbox in the same transaction as the effect.
    outbox: tuple[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    level: int
    args_schema: dict[str, Any]
    has_side_effect: bool
    run: Callable[[dict[str, Any]], ToolResult] = field(repr=False)


TOOLS: dict[str, ToolSpec] = {}


def register(spec: ToolSpec) -> ToolSpec:
    TOOLS[spec.name] = spec
    return spec


def tool_spec(name: str) -> ToolSpec:
    return TOOLS[name]


from agents.tools import builtin  # noqa: E402,F401  (registers the shipped tools)

__all__ = ["TOOLS", "PrivilegeLevel", "ToolResult", "ToolSpec", "register", "tool_spec"]
