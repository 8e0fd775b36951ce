"""The shipped tools. Side-effecting ones describe what to send and the engine writes it to
the outbox under the effect's idempotency key; the relay delivers it to the tenant's endpoint
for its kind (agents.integrations.relay). Tools that read answer from the tenant's systems
(agents.integrations.calls), never from fixed values."""

from __future__ import annotations

from typing import Any

from agents.models import PrivilegeLevel
from agents.tools import ToolResult, ToolSpec, register


def _escalate(args: dict[str, Any]) -> ToolResult:
    return ToolResult({"escalated": True, "reason": args["reason"], "queue": args.get("queue", "support")})


def _send_reply(args: dict[str, Any]) -> ToolResult:
    return ToolResult({"sent": True, "to": args["to"]}, outbox=("reply", dict(args)))


def _issue_refund(args: dict[str, Any]) -> ToolResult:
    return ToolResult(
        {"refunded": True, "amount": args["amount"], "currency": args["currency"]}, outbox=("refund", dict(args))
    )


def _restart_service(args: dict[str, Any]) -> ToolResult:
    return ToolResult({"restarted": True, "service": args["service"]}, outbox=("restart", dict(args)))


def _lookup_order(args: dict[str, Any]) -> ToolResult:
    # Read-only, answered by the tenant's order system: the endpoint that takes "lookup_order".
    from agents.integrations.calls import endpoint_call

    return ToolResult(endpoint_call(kind="lookup_order", payload=dict(args)))


register(
    ToolSpec(
        name="escalate_to_human",
        description="Hand the task to a human with a reason.",
        level=PrivilegeLevel.EXECUTE_SAFE,
        has_side_effect=False,
        run=_escalate,
        args_schema={
            "type": "object",
            "additionalProperties": False,
            "required": ["reason"],
            "properties": {
                "reason": {"type": "string", "minLength": 1, "maxLength": 500},
                "queue": {"type": "string", "maxLength": 100},
            },
        },
    )
)
register(
    ToolSpec(
        name="send_reply",
        description="Send a reply to the customer.",
        level=PrivilegeLevel.EXECUTE_SAFE,
        has_side_effect=True,
        run=_send_reply,
        args_schema={
            "type": "object",
            "additionalProperties": False,
            "required": ["to", "body"],
            "properties": {
                "to": {"type": "string", "minLength": 1, "maxLength": 200},
                "subject": {"type": "string", "maxLength": 200},
                "body": {"type": "string", "minLength": 1, "maxLength": 10000},
            },
        },
    )
)
register(
    ToolSpec(
        name="issue_refund",
        description="Refund a customer's order.",
        level=PrivilegeLevel.EXECUTE_RISKY,
        has_side_effect=True,
        run=_issue_refund,
        args_schema={
            "type": "object",
            "additionalProperties": False,
            "required": ["order_id", "amount", "currency"],
            "properties": {
                "order_id": {"type": "string", "minLength": 1, "maxLength": 100},
                "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000},
                "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
            },
        },
    )
)
register(
    ToolSpec(
        name="restart_service",
        description="Restart a production service.",
        level=PrivilegeLevel.ADMIN,
        has_side_effect=True,
        run=_restart_service,
        args_schema={
            "type": "object",
            "additionalProperties": False,
            "required": ["service"],
            "properties": {
                "service": {"type": "string", "minLength": 1, "maxLength": 100},
                "reason": {"type": "string", "maxLength": 500},
            },
        },
    )
)
register(
    ToolSpec(
        name="lookup_order",
        description="Look an order up (read only).",
        level=PrivilegeLevel.READ_ONLY,
        has_side_effect=False,
        run=_lookup_order,
        args_schema={
            "type": "object",
            "additionalProperties": False,
            "required": ["order_id"],
            "properties": {"order_id": {"type": "string", "minLength": 1, "maxLength": 100}},
        },
    )
)
