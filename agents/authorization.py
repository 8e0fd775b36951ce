"""May this agent run this tool now? allow, needs approval (and by whom), or deny."""

from __future__ import annotations

from dataclasses import dataclass

from agents.models import Agent, AutomationLevel, PrivilegeLevel
from agents.tools import ToolSpec

ALLOW, NEEDS_APPROVAL, DENY = "allow", "needs_approval", "deny"


@dataclass(frozen=True)
class Verdict:
    outcome: str
    reason: str
    required_role: str = ""


def authorize(*, agent: Agent, tool: ToolSpec, granted: set[str]) -> Verdict:
    """Tool level against the agent's ceiling, its grants and its automation level:
    1-2 run (manual agents ask before any side effect), 3 needs a reviewer, 4 an admin,
    5 is never automatic (an admin must approve every call)."""
    if tool.name not in granted:
        return Verdict(DENY, f"agent {agent.name} is not granted tool {tool.name}")
    if tool.level > agent.privilege_ceiling:
        return Verdict(
            DENY, f"tool {tool.name} is level {tool.level}, above the agent's ceiling {agent.privilege_ceiling}"
        )
    if tool.level >= PrivilegeLevel.ADMIN:
        return Verdict(NEEDS_APPROVAL, f"level {tool.level} tools need an admin's approval", "admin")
    if tool.level == PrivilegeLevel.EXECUTE_RISKY:
        return Verdict(NEEDS_APPROVAL, "risky tools need a reviewer's approval", "reviewer")
    if agent.automation_level == AutomationLevel.MANUAL and tool.has_side_effect:
        return Verdict(NEEDS_APPROVAL, "manual agents ask before every side effect", "reviewer")
    return Verdict(ALLOW, "within the agent's ceiling")
