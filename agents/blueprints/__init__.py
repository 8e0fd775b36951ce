"""The blueprint registry: name → class, with description, default config and config schema."""

from __future__ import annotations

from typing import Any

from agents.blueprints.base import BaseAgent, Decision, StepContext, StepView
from agents.blueprints.monitor import MonitorAgent
from agents.blueprints.ops import OpsAgent
from agents.blueprints.resolution import ResolutionAgent
from agents.blueprints.support import SupportAgent
from agents.blueprints.triage import TriageAgent

BLUEPRINTS: dict[str, type[BaseAgent]] = {
    cls.name: cls for cls in (TriageAgent, ResolutionAgent, OpsAgent, SupportAgent, MonitorAgent)
}


def blueprint_class(name: str) -> type[BaseAgent]:
    return BLUEPRINTS[name]


def blueprint_describe(name: str) -> dict[str, Any]:
    cls = BLUEPRINTS[name]
    return {
        "name": cls.name,
        "description": cls.description,
        "default_config": cls.default_config,
        "config_schema": cls.config_schema,
        "input_schema": cls.input_schema,
        "tools": list(cls.tools),
    }


__all__ = ["BLUEPRINTS", "BaseAgent", "Decision", "StepContext", "StepView", "blueprint_class", "blueprint_describe"]
