"""Hooks through which tenants reaches the apps above it without importing them.

Provisioning with demo content (``provision_tenant --demo``) fills the new tenant's schema
with what the higher apps ship, the agents app's demo agents among them. Each app registers
its part when Django starts (``agents.apps``); tenants only calls what was registered.
"""

from __future__ import annotations

from collections.abc import Callable

# Creates demo content in the connection's current schema, inside the caller's transaction,
# and returns the names of what it created.
DemoContentCreate = Callable[[], list[str]]

_demo_content: list[DemoContentCreate] = []


def demo_content_register(create: DemoContentCreate) -> None:
    """Add a creator of demo content (once, however often an app's ``ready`` runs)."""
    if create not in _demo_content:
        _demo_content.append(create)


def demo_content_create() -> list[str]:
    """Run every registered creator in the current schema; the names of what they created."""
    return [name for create in _demo_content for name in create()]
