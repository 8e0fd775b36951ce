"""`manage.py demo_traffic --domain acme.localhost`: submit a sample ticket or event to the
tenant's demo agents every few seconds, so the dashboard of a fresh demo moves on its own.

Nothing runs it but the demo (`make demo`); it stops on Ctrl-C, after ``--count`` tasks, or
when the tenant is gone. Refunds wait for a reviewer, so at most ``--max-waiting`` tasks are
left awaiting a decision: past that it sends tickets that need none.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.models import Agent, AgentStatus, Task, TaskState
from agents.services import task_submit
from config.connection import connection
from config.errors import VigilError
from governance.context import new_correlation_id, set_correlation_id
from tenants.models import Domain

logger = logging.getLogger(__name__)

# (blueprint, input, waits for a reviewer)
SAMPLES: tuple[tuple[str, dict[str, Any], bool], ...] = (
    ("triage", {"text": "My invoice shows a double charge, please fix it", "customer_email": "sam@example.com"}, False),
    (
        "resolution",
        {"text": "How do I change the delivery address of my order?", "customer_email": "kim@example.com"},
        False,
    ),
    ("triage", {"text": "The app crashes when I open my profile", "customer_email": "lee@example.com"}, False),
    ("ops", {"service": "api", "kind": "latency", "message": "p99 above 2 s for 5 minutes"}, True),
    (
        "resolution",
        {"text": "Please refund 25 EUR for order #AB1234, it arrived broken", "customer_email": "dana@example.com"},
        True,
    ),
)


class Command(BaseCommand):
    help = "Keep a trickle of sample tasks flowing through a demo tenant's agents (demo only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--domain", required=True, help="the tenant's domain, e.g. acme.localhost")
        parser.add_argument("--every", type=float, default=6.0, help="seconds between tasks (default 6)")
        parser.add_argument("--count", type=int, default=0, help="stop after this many tasks (0: never)")
        parser.add_argument("--max-waiting", type=int, default=3, help="tasks left awaiting a reviewer at most")
        parser.add_argument("--seed", type=int, default=None, help="seed for the pauses' jitter")

    def handle(self, *args: Any, **options: Any) -> None:
        domain = Domain.objects.select_related("tenant").filter(domain=options["domain"]).first()
        if domain is None or domain.tenant.schema_name == "public":
            raise CommandError(f"no tenant on {options['domain']}")
        tenant = domain.tenant
        jitter = random.Random(options["seed"])  # noqa: S311  (pauses between demo tasks, not secrets)
        sent = 0
        for blueprint, task_input, waits in itertools.cycle(SAMPLES):
            connection.set_tenant(tenant)
            if self._send(blueprint=blueprint, task_input=task_input, waits=waits, max_waiting=options["max_waiting"]):
                sent += 1
                if options["count"] and sent >= options["count"]:
                    return
                time.sleep(options["every"] * jitter.uniform(0.5, 1.5))
            else:
                time.sleep(0.2)  # nothing to send on this turn: never spin

    def _send(self, *, blueprint: str, task_input: dict[str, Any], waits: bool, max_waiting: int) -> bool:
        if waits and Task.objects.filter(state=TaskState.AWAITING_APPROVAL).count() >= max_waiting:
            return False
        agent = Agent.objects.filter(blueprint=blueprint, status=AgentStatus.ENABLED).order_by("pk").first()
        if agent is None:
            return False
        set_correlation_id(new_correlation_id())
        try:
            task = task_submit(agent_id=agent.pk, input=task_input)
        except VigilError as exc:
            logger.warning("demo_traffic.refused", extra={"agent": agent.name, "code": exc.code})
            return False
        finally:
            set_correlation_id(None)
        self.stdout.write(f"task {task.pk} for {agent.name}", ending="\n")
        self.stdout.flush()
        return True
