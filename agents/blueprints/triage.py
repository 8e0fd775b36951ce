from __future__ import annotations

from typing import Any

from agents.blueprints.base import BaseAgent, Decision, StepContext

CATEGORIES = ["billing", "technical", "account", "shipping", "feedback", "general"]
PRIORITIES = ["low", "medium", "high", "critical"]

TRIAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["category", "priority", "confidence", "clarification_needed", "metadata", "summary"],
    "properties": {
        "category": {"type": "string", "enum": CATEGORIES},
        "priority": {"type": "string", "enum": PRIORITIES},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "clarification_needed": {"type": "boolean"},
        "summary": {"type": "string"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["order_id", "amount", "currency", "email", "sentiment", "wants_refund"],
            "properties": {
                "order_id": {"type": ["string", "null"]},
                "amount": {"type": ["number", "null"]},
                "currency": {"type": ["string", "null"]},
                "email": {"type": ["string", "null"]},
                "sentiment": {"type": "string"},
                "wants_refund": {"type": "boolean"},
            },
        },
    },
}

TICKET_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 20000},
        "subject": {"type": "string", "maxLength": 300},
        "customer_email": {"type": "string", "maxLength": 200},
        "ticket_id": {"type": "string", "maxLength": 100},
    },
}

ACKNOWLEDGEMENTS = {
    "billing": "We received your billing question and our billing team is on it.",
    "technical": "We received your report and our engineers are looking into it.",
    "account": "We received your account request; we will help you regain access.",
    "shipping": "We received your delivery question and are checking with the carrier.",
    "feedback": "Thank you for your feedback: it goes straight to our product team.",
    "general": "We received your message and will get back to you shortly.",
}


def ticket_text(task_input: dict[str, Any]) -> str:
    return " ".join(filter(None, [task_input.get("subject", ""), task_input["text"]]))


class TriageAgent(BaseAgent):
    name = "triage"
    description = (
        "Classifies a support ticket (category, priority, confidence, metadata, clarification "
        "needed), acknowledges it, and escalates to a human when unsure."
    )
    default_config = {
        "confidence_threshold": 0.6,
        "auto_reply": True,
        "max_iterations": 5,
        "system_prompt": "You triage customer support tickets. Answer with the JSON schema given.",
    }
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "confidence_threshold": {"type": "number", "minimum": 0, "maximum": 1},
            "auto_reply": {"type": "boolean"},
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 50},
            "system_prompt": {"type": "string", "maxLength": 4000},
        },
    }
    input_schema = TICKET_INPUT
    output_schema = TRIAGE_SCHEMA
    tools = ("send_reply", "escalate_to_human")

    def plan(self, ctx: StepContext) -> Decision:
        classified = ctx.step("classify")
        if classified is None:
            return Decision.record(
                "classify",
                self.ask("triage", ticket_text(ctx.task_input), TRIAGE_SCHEMA),
                reasoning="classify the ticket",
            )
        triage = classified.result
        escalated = ctx.step("escalate_to_human")
        if escalated is not None:
            return Decision.escalate(escalated.arguments.get("reason", "escalated"), output=triage)
        unsure = triage["clarification_needed"] or triage["confidence"] < self.config["confidence_threshold"]
        if unsure:
            reason = (
                "the ticket needs clarification"
                if triage["clarification_needed"]
                else f"confidence {triage['confidence']} below {self.config['confidence_threshold']}"
            )
            return Decision.tool("escalate_to_human", {"reason": reason, "queue": triage["category"]}, reasoning=reason)
        if self.config["auto_reply"] and ctx.step("send_reply") is None:
            to = ctx.task_input.get("customer_email") or triage["metadata"]["email"] or "customer"
            return Decision.tool(
                "send_reply",
                {
                    "to": to,
                    "subject": f"Re: {ctx.task_input.get('subject') or 'your request'}",
                    "body": ACKNOWLEDGEMENTS[triage["category"]],
                },
                reasoning="acknowledge the ticket",
            )
        return Decision.finish(triage)
