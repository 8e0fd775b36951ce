from __future__ import annotations

from typing import Any

from agents.blueprints.base import BaseAgent, Decision, StepContext
from agents.blueprints.triage import TICKET_INPUT, TRIAGE_SCHEMA, ticket_text

RESOLUTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["reply", "status", "notes", "escalation_channel"],
    "properties": {
        "reply": {"type": "string", "minLength": 1},
        "status": {"type": "string", "enum": ["resolved", "in_progress", "pending_refund", "escalated"]},
        "notes": {"type": "string"},
        "escalation_channel": {"type": "string", "enum": ["support", "finance", "engineering"]},
    },
}


class ResolutionAgent(BaseAgent):
    name = "resolution"
    description = (
        "Resolves a support ticket: drafts the reply, proposes a refund when the customer asks "
        "for one (a risky action that waits for a reviewer), then sends the reply."
    )
    default_config = {
        "max_refund": 500.0,
        "max_iterations": 8,
        "system_prompt": "You resolve customer support tickets. Answer with the JSON schema given.",
    }
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "max_refund": {"type": "number", "minimum": 0},
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 50},
            "system_prompt": {"type": "string", "maxLength": 4000},
        },
    }
    input_schema = TICKET_INPUT
    output_schema = RESOLUTION_SCHEMA
    tools = ("issue_refund", "send_reply", "escalate_to_human")

    def plan(self, ctx: StepContext) -> Decision:
        classified = ctx.step("classify")
        if classified is None:
            return Decision.record("classify", self.ask("triage", ticket_text(ctx.task_input), TRIAGE_SCHEMA))
        draft = ctx.step("draft")
        if draft is None:
            return Decision.record("draft", self.ask("resolution", classified.result, RESOLUTION_SCHEMA))
        meta = classified.result["metadata"]
        resolution = dict(draft.result)
        refund = ctx.step("issue_refund")
        wants_refund = meta["wants_refund"] and meta["amount"] and meta["order_id"]
        if wants_refund and refund is None:
            if meta["amount"] > self.config["max_refund"]:
                if ctx.step("escalate_to_human") is None:
                    return Decision.tool(
                        "escalate_to_human",
                        {"reason": f"refund of {meta['amount']} above the agent's limit", "queue": "finance"},
                    )
                return Decision.escalate("refund above the agent's limit", output={**resolution, "status": "escalated"})
            return Decision.tool(
                "issue_refund",
                {"order_id": meta["order_id"], "amount": meta["amount"], "currency": meta["currency"] or "EUR"},
                reasoning=f"customer asks for a refund of {meta['amount']} on {meta['order_id']}",
            )
        if refund is not None and refund.decision in ("rejected", "denied"):
            resolution["reply"] = (
                "Hello,\n\nwe looked at your refund request and cannot issue it automatically. "
                "A colleague from our billing team will contact you.\n\nBest regards,\nSupport"
            )
            resolution["status"] = "escalated"
        if ctx.step("send_reply") is None:
            to = ctx.task_input.get("customer_email") or meta["email"] or "customer"
            return Decision.tool(
                "send_reply",
                {
                    "to": to,
                    "subject": f"Re: {ctx.task_input.get('subject') or 'your request'}",
                    "body": resolution["reply"],
                },
            )
        if refund is not None and refund.decision == "approved":
            resolution["status"] = "resolved"
        return Decision.finish(resolution)
