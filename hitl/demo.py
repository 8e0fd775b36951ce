"""Demo content of hitl for ``provision_tenant --demo``: two approval policies that show what
policies do in the demo queue (``manage.py demo_queue`` seeds refunds of 15 to 80 EUR)."""

from __future__ import annotations

from governance.actors import Actor
from hitl.policies import policy_create_within

DEMO_POLICIES = (
    {
        "name": "large-refunds",
        "description": "Refunds above 50 need two reviewers, within an hour at most.",
        "order": 10,
        "content": {
            "conditions": {"tools": ["issue_refund"], "arguments": [{"argument": "amount", "gt": 50}]},
            "gate": "approval",
            "approver_role": "reviewer",
            "quorum": 2,
            "priority": "high",
            "sla_minutes": {"critical": 15, "high": 60, "medium": 60, "low": 60},
            "ladder": {"reminder_share": 0.5, "steps": [{"role": "admin", "raise_priority": True}]},
            "terminal": "auto_reject",
        },
    },
    {
        "name": "review-customer-replies",
        "description": "Shadow: what reviewing every customer reply would add to the queue.",
        "order": 20,
        "shadow": True,
        "content": {"conditions": {"tools": ["send_reply"]}, "gate": "approval", "approver_role": "reviewer"},
    },
)


def demo_content_create() -> list[str]:
    """Create the demo policies in the current schema, inside the caller's transaction
    (registered with tenants.hooks in hitl.apps)."""
    actor = Actor.system("demo")
    return [
        policy_create_within(
            name=str(spec["name"]),
            content=spec["content"],
            author=None,
            actor=actor,
            description=str(spec["description"]),
            order=int(spec["order"]),  # type: ignore[call-overload]
            shadow=bool(spec.get("shadow", False)),
            reason="demo content",
        ).name
        for spec in DEMO_POLICIES
    ]
