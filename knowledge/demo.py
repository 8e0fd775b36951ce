"""Demo content of the knowledge app for ``provision_tenant --demo``: a support agent that
answers from the help-center collection (``make demo`` ingests knowledge/corpus/help_center)."""

from __future__ import annotations

from agents.models import AutomationLevel, PrivilegeLevel
from agents.services import agent_create_within


def demo_content_create() -> list[str]:
    """Create the demo support agent in the current schema, inside the caller's transaction
    (registered with tenants.hooks in knowledge.apps)."""
    agent = agent_create_within(
        name="helpdesk",
        blueprint="support",
        description="Answers customers from the help center, citing the articles it used.",
        privilege_ceiling=PrivilegeLevel.EXECUTE_SAFE,
        automation_level=AutomationLevel.SEMI_AUTO,
    )
    return [agent.name]
