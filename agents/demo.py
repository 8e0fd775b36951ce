"""Demo content for `provision_tenant --demo`: one agent per shipped blueprint."""

from __future__ import annotations

from agents.models import AutomationLevel, PrivilegeLevel
from agents.services import agent_create

DEMO_AGENTS = (
    {"name": "triage-bot", "blueprint": "triage", "description": "Classifies incoming support tickets.",
     "privilege_ceiling": PrivilegeLevel.EXECUTE_SAFE, "automation_level": AutomationLevel.SEMI_AUTO},
    {"name": "resolver", "blueprint": "resolution",
     "description": "Answers tickets; refunds wait for a reviewer.",
     "privilege_ceiling": PrivilegeLevel.EXECUTE_RISKY, "automation_level": AutomationLevel.SEMI_AUTO},
    {"name": "ops-bot", "blueprint": "ops", "description": "Proposes remediations for system events.",
     "privilege_ceiling": PrivilegeLevel.ADMIN, "automation_level": AutomationLevel.SEMI_AUTO},
)


def demo_content_create() -> list[str]:
    """Create the demo agents in the current schema (inside the caller's transaction)."""
    return [agent_create(**spec).name for spec in DEMO_AGENTS]
