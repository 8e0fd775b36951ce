"""Demo content for `provision_tenant --demo`: one agent per shipped blueprint."""

from __future__ import annotations

from typing import Any

from agents.models import AutomationLevel, PrivilegeLevel
from agents.services import agent_create_within

DEMO_AGENTS: tuple[dict[str, Any], ...] = (
    {
        "name": "triage-bot",
        "blueprint": "triage",
        "description": "Classifies incoming support tickets.",
        "privilege_ceiling": PrivilegeLevel.EXECUTE_SAFE,
        "automation_level": AutomationLevel.SEMI_AUTO,
    },
    {
        "name": "resolver",
        "blueprint": "resolution",
        "description": "Answers tickets; refunds wait for a reviewer.",
        "privilege_ceiling": PrivilegeLevel.EXECUTE_RISKY,
        "automation_level": AutomationLevel.SEMI_AUTO,
    },
    {
        "name": "ops-bot",
        "blueprint": "ops",
        "description": "Proposes remediations for system events.",
        "privilege_ceiling": PrivilegeLevel.ADMIN,
        "automation_level": AutomationLevel.SEMI_AUTO,
    },
    {
        "name": "sla-monitor",
        "blueprint": "monitor",
        "description": "Reports response and resolution times, SLA breaches and backlog per agent.",
        "privilege_ceiling": PrivilegeLevel.READ_ONLY,
        "automation_level": AutomationLevel.SEMI_AUTO,
    },
)


def demo_content_create() -> list[str]:
    """Create the demo agents in the current schema, inside the caller's transaction (the
    tenant's provisioning: registered with tenants.hooks in agents.apps)."""
    return [agent_create_within(**spec).name for spec in DEMO_AGENTS]
