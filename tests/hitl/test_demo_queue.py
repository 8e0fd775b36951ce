"""`manage.py demo_queue`: seeds a demo tenant's queue (tasks bound for their approval gate)."""

from __future__ import annotations

from io import StringIO

from django.contrib.auth.models import User
from django.core.management import call_command

from agents.models import Task
from hitl.models import ReviewerProfile
from tenants.models import Tenant
from tests.agents.api_support import agent_make, member_add


def test_demo_queue_submits_tasks_of_mixed_priorities_and_gives_the_reviewer_a_profile(acme: Tenant) -> None:
    agent_make(acme, "resolver", "resolution", privilege_ceiling=3)
    agent_make(acme, "ops-bot", "ops", privilege_ceiling=4)
    member_add(acme, "reviewer@acme.localhost", "reviewer")
    out = StringIO()
    call_command("demo_queue", "--domain", "acme.localhost", "--count", "8", stdout=out)
    assert "8 tasks submitted" in out.getvalue()
    tasks = Task.objects.filter(agent__name__in=["resolver", "ops-bot"])
    assert sorted(set(tasks.values_list("priority", flat=True))) == [1, 2, 3, 4]
    assert set(tasks.values_list("agent__name", flat=True)) == {"resolver", "ops-bot"}
    assert ReviewerProfile.objects.filter(user=User.objects.get(username="reviewer@acme.localhost")).exists()
