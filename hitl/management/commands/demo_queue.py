"""Seed a demo tenant's approval queue: tasks of mixed priorities for the gated demo agents
(refunds for resolver, restarts for ops-bot), which the workers run up to their approval gate,
and a reviewer profile for the demo reviewer so that some land in their queue. A second run
tops the queue up to ``--count`` open requests."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser

from agents.models import Agent, TaskPriority
from agents.services import task_submit
from config.connection import connection
from hitl.models import OPEN_STATUSES, ApprovalRequest, ReviewerProfile
from tenants.models import Tenant

REFUNDS = [
    ("Please refund 25 EUR for order #AB1234, it arrived broken", "dana@example.com"),
    ("Refund 80 EUR for order #CD5678, never delivered", "eli@example.com"),
    ("The lamp (order #EF9012) is faulty, I want my 40 EUR back", "fay@example.com"),
    ("Charged twice for order #GH3456, refund 15 EUR please", "gus@example.com"),
]
PRIORITIES = [TaskPriority.CRITICAL, TaskPriority.HIGH, TaskPriority.MEDIUM, TaskPriority.LOW]


class Command(BaseCommand):
    help = "Seed the approval queue of a demo tenant (tasks that stop at their approval gate)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--domain", required=True, help="the tenant's domain, e.g. acme.localhost")
        parser.add_argument("--count", type=int, default=12)

    def handle(self, *args: Any, **options: Any) -> None:
        domain = options["domain"]
        connection.set_tenant(Tenant.objects.get(domains__domain=domain))
        reviewer = User.objects.filter(username=f"reviewer@{domain}").first()
        if reviewer is not None:
            ReviewerProfile.objects.get_or_create(user=reviewer, defaults={"capacity": 6})
        missing = options["count"] - ApprovalRequest.objects.filter(status__in=OPEN_STATUSES).count()
        agents = {a.name: a for a in Agent.objects.filter(name__in=["resolver", "ops-bot"])}
        submitted = 0
        for n in range(max(missing, 0)):
            priority = PRIORITIES[n % len(PRIORITIES)]
            if n % 4 == 3 and "ops-bot" in agents:
                payload: dict[str, Any] = {"service": "api", "kind": "crash", "message": "pod in crashloop"}
                agent = agents["ops-bot"]
            elif "resolver" in agents:
                text, email = REFUNDS[n % len(REFUNDS)]
                payload, agent = {"text": text, "customer_email": email}, agents["resolver"]
            else:
                break
            task_submit(agent_id=agent.pk, input=payload, priority=priority)
            submitted += 1
        self.stdout.write(f"approval queue: {submitted} tasks submitted towards their approval gate")
