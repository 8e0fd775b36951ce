"""`manage.py demo_traffic`: the demo's trickle of sample tasks."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents.models import Task
from agents.services import agent_create
from config.connection import connection
from tenants.models import Tenant


def test_demo_traffic_submits_sample_tasks_to_the_tenants_agents(acme: Tenant) -> None:
    connection.set_tenant(acme)
    agent_create(name="traffic-triage", blueprint="triage")
    before = Task.objects.count()
    connection.set_schema_to_public()
    out = StringIO()

    call_command("demo_traffic", domain="acme.localhost", count=2, every=0, stdout=out)

    connection.set_tenant(acme)
    assert Task.objects.count() == before + 2
    assert out.getvalue().count("task ") == 2


def test_demo_traffic_refuses_an_unknown_domain(db: None) -> None:
    with pytest.raises(CommandError, match=r"no tenant on nowhere\.localhost"):
        call_command("demo_traffic", domain="nowhere.localhost", count=1, every=0)
