from __future__ import annotations

import dataclasses
from typing import Any

from agents.blueprints.base import BaseAgent, Decision, StepContext
from agents.models import PrivilegeLevel
from agents.tools import register, tool_spec

OPS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "service", "risk", "reason"],
    "properties": {
        "action": {"type": "string", "enum": ["restart_service", "escalate_to_human", "none"]},
        "service": {"type": "string"},
        "risk": {"type": "string", "enum": ["low", "medium", "high"]},
        "reason": {"type": "string"},
    },
}
EVENT_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["service", "kind"],
    "properties": {
        "service": {"type": "string", "minLength": 1, "maxLength": 100},
        "kind": {"type": "string", "minLength": 1, "maxLength": 100},
        "message": {"type": "string", "maxLength": 5000},
        "severity": {"type": "string", "enum": ["info", "warning", "error", "critical"]},
        # Set by the event intake (agents.intake): where the event came from and its id there.
        "source": {"type": "string", "maxLength": 50},
        "event_id": {"type": "string", "maxLength": 300},
    },
}

# The risk of restarting a service, by the severity of the event that calls for it: a restart
# for an informational event is routine, one during a critical incident can make it worse.
# Without a severity, the risk the analysis gave stands.
RESTART_RISK = {"info": "low", "warning": "medium", "error": "high", "critical": "high"}
# The approval a restart needs follows its risk through the privilege level of the tool the
# agent calls (agents.authorization: level 2 runs within the agent's automation level, 3
# needs a reviewer, 4 an admin). One declaration per risk, same arguments and same effect.
RESTART_LEVELS = {
    "low": PrivilegeLevel.EXECUTE_SAFE,
    "medium": PrivilegeLevel.EXECUTE_RISKY,
    "high": PrivilegeLevel.ADMIN,
}
RESTART_TOOLS = {"low": "restart_service.low", "medium": "restart_service.medium", "high": "restart_service"}


def _restart_tools_register() -> None:
    restart = tool_spec("restart_service")
    for risk in ("low", "medium"):
        register(
            dataclasses.replace(
                restart,
                name=RESTART_TOOLS[risk],
                level=RESTART_LEVELS[risk],
                description=f"Restart a production service ({risk} risk).",
            )
        )


_restart_tools_register()


def proposal_assess(event: dict[str, Any], proposal: dict[str, Any]) -> dict[str, Any]:
    """The proposal with the risk its action carries: a restart's from the event's severity
    (RESTART_RISK), other actions (escalate, none) change nothing and keep the analysis's."""
    severity = event.get("severity")
    if proposal.get("action") != "restart_service" or severity not in RESTART_RISK:
        return proposal
    return {**proposal, "risk": RESTART_RISK[severity]}


class OpsAgent(BaseAgent):
    name = "ops"
    description = (
        "Event-driven remediation: turns a system event into a proposed action with a risk "
        "level; a restart's approval follows its risk (low: none, medium: a reviewer, high: an admin)."
    )
    default_config = {
        "max_iterations": 5,
        "system_prompt": "You propose remediations for system events. Answer with the JSON schema given.",
    }
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 50},
            "system_prompt": {"type": "string", "maxLength": 4000},
        },
    }
    input_schema = EVENT_INPUT
    output_schema = OPS_SCHEMA
    tools = ("restart_service", "restart_service.medium", "restart_service.low", "escalate_to_human")

    def plan(self, ctx: StepContext) -> Decision:
        analysis = ctx.step("analyze")
        if analysis is None:
            return Decision.record("analyze", self.ask("ops", ctx.task_input, OPS_SCHEMA))
        proposal = proposal_assess(ctx.task_input, analysis.result)
        restart_tool = RESTART_TOOLS[proposal["risk"]]
        restart = ctx.step(restart_tool)
        escalation = ctx.step("escalate_to_human")
        if escalation is not None:
            return Decision.escalate(escalation.arguments["reason"], output=proposal)
        if proposal["action"] == "restart_service" and restart is None:
            return Decision.tool(
                restart_tool,
                {"service": proposal["service"], "reason": proposal["reason"]},
                reasoning=f"{proposal['risk']} risk: {proposal['reason']}",
            )
        if restart is not None and restart.decision in ("rejected", "denied"):
            return Decision.tool(
                "escalate_to_human",
                {"reason": f"restart of {proposal['service']} was {restart.decision}", "queue": "ops"},
            )
        if proposal["action"] == "escalate_to_human":
            return Decision.tool("escalate_to_human", {"reason": proposal["reason"], "queue": "ops"})
        return Decision.finish(proposal)
