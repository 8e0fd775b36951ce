"""The ``monitor`` blueprint: performance monitoring of the tenant's own agents. It gathers the
service-level figures (reviewer response time, task resolution time, SLA breach rate, backlog
per agent) through the ``hitl.sla_metrics`` tool, whose four families run in parallel, and
reports them as a structured result with the agents that miss the tenant's targets.

The tool is registered by the hitl app (agents does not import it); this module only names it.
The report is computed, not written by a model: the figures are the answer."""

from __future__ import annotations

from typing import Any

from agents.blueprints.base import BaseAgent, Decision, StepContext

METRICS_TOOL = "hitl.sla_metrics"

MONITOR_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"window_hours": {"type": "integer", "minimum": 1, "maximum": 24 * 90}},
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "window_hours", "agents", "totals", "alerts"],
    "properties": {
        "status": {"type": "string", "enum": ["healthy", "attention"]},
        "window_hours": {"type": "integer"},
        "agents": {"type": "object"},
        "totals": {"type": "object"},
        "alerts": {"type": "array", "items": {"type": "string"}},
    },
}


class MonitorAgent(BaseAgent):
    name = "monitor"
    description = (
        "Performance monitoring: reviewer response time, task resolution time, SLA breach rate "
        "and backlog per agent, reported with the agents that miss their targets."
    )
    default_config = {
        "window_hours": 24,
        "max_breach_rate": 0.1,
        "max_resolution_p95_s": 3600,
        "max_backlog_approvals": 20,
        "max_iterations": 3,
    }
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "window_hours": {"type": "integer", "minimum": 1, "maximum": 24 * 90},
            "max_breach_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "max_resolution_p95_s": {"type": "number", "minimum": 0},
            "max_backlog_approvals": {"type": "integer", "minimum": 0},
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 50},
        },
    }
    input_schema = MONITOR_INPUT
    output_schema = OUTPUT_SCHEMA
    tools = (METRICS_TOOL,)

    def plan(self, ctx: StepContext) -> Decision:
        measured = ctx.step(METRICS_TOOL)
        if measured is None:
            window = int(ctx.task_input.get("window_hours") or self.config["window_hours"])
            return Decision.tool(METRICS_TOOL, {"window_hours": window}, reasoning="the figures are the report")
        if measured.decision in ("denied", "rejected"):
            return Decision.escalate(f"the service-level figures could not be read ({measured.decision})")
        figures: dict[str, Any] = measured.result
        alerts = self.alerts(figures["agents"])
        return Decision.finish(
            {
                "status": "attention" if alerts else "healthy",
                "window_hours": figures["window_hours"],
                "agents": figures["agents"],
                "totals": figures["totals"],
                "alerts": alerts,
            }
        )

    def alerts(self, agents: dict[str, dict[str, Any]]) -> list[str]:
        """One line per agent and target it misses."""
        found = []
        for name, figures in agents.items():
            rate = figures.get("breach_rate")
            if rate is not None and rate > float(self.config["max_breach_rate"]):
                found.append(f"{name}: SLA breach rate {rate:.0%} above {float(self.config['max_breach_rate']):.0%}")
            p95 = figures.get("resolution_p95_s")
            if p95 is not None and p95 > float(self.config["max_resolution_p95_s"]):
                found.append(f"{name}: resolution p95 {p95:.0f} s above {self.config['max_resolution_p95_s']} s")
            backlog = figures.get("backlog_approvals", 0)
            if backlog > int(self.config["max_backlog_approvals"]):
                found.append(f"{name}: {backlog} approvals waiting, above {self.config['max_backlog_approvals']}")
        return found
