from __future__ import annotations

from typing import Any

from agents.blueprints.base import BaseAgent, Decision, StepContext

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
    },
}


class OpsAgent(BaseAgent):
    name = "ops"
    description = (
        "Event-driven remediation: turns a system event into a proposed action with a risk "
        "level; restarting a service needs an admin's approval."
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
    tools = ("restart_service", "escalate_to_human")

    def plan(self, ctx: StepContext) -> Decision:
        analysis = ctx.step("analyze")
        if analysis is None:
            return Decision.record("analyze", self.ask("ops", ctx.task_input, OPS_SCHEMA))
        proposal = analysis.result
        restart = ctx.step("restart_service")
        escalation = ctx.step("escalate_to_human")
        if escalation is not None:
            return Decision.escalate(escalation.arguments["reason"], output=proposal)
        if proposal["action"] == "restart_service" and restart is None:
            return Decision.tool(
                "restart_service",
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
