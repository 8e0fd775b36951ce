"""agents migration 0011: ops agents created before a restart's approval followed its risk get the
risk-graded restart tools that an ops agent created today is granted, audited; agents that may
not restart at all, and agents of other blueprints, are left alone; running it again changes
nothing. Run as a migration, backwards and forwards, on acme's schema (rolled back with the
test)."""

from __future__ import annotations

import pytest
from django.db.migrations.executor import MigrationExecutor

from agents.blueprints.ops import OpsAgent
from agents.models import Agent, Tool
from agents.services import agent_create
from config.connection import connection
from governance.models import AuditEvent
from tenants.models import Tenant
from tests.agents.helpers_execution import unique

pytestmark = pytest.mark.django_db

BEFORE = ("agents", "0010_gate_rules_function")
MIGRATION = ("agents", "0011_ops_restart_tools")
VARIANTS = ["restart_service.low", "restart_service.medium"]


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


def _tools(agent: Agent) -> list[str]:
    return sorted(agent.tools.values_list("name", flat=True))


def _grants(agent: Agent) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_type="agent", target_id=str(agent.pk), verb="agent.tools_changed"))


def test_old_ops_agents_get_the_restart_tools_a_new_one_has(in_acme: Tenant) -> None:
    fresh = agent_create(name=unique("ops-new"), blueprint="ops")
    assert _tools(fresh) == sorted(OpsAgent.tools)
    old = agent_create(name=unique("ops-old"), blueprint="ops")
    no_restarts = agent_create(name=unique("ops-norestart"), blueprint="ops", tools=["escalate_to_human"])
    triage = agent_create(name=unique("triage"), blueprint="triage")
    triage_tools = _tools(triage)
    # As the schema was before the variants existed: no such tools, so no agent has them.
    Tool.objects.filter(name__in=VARIANTS).delete()
    assert _tools(old) == ["escalate_to_human", "restart_service"]
    _migrate(BEFORE)

    _migrate(MIGRATION)

    assert _tools(old) == sorted(OpsAgent.tools) == _tools(fresh)
    levels = dict(Tool.objects.filter(name__in=VARIANTS).values_list("name", "privilege_level"))
    assert levels == {"restart_service.low": 2, "restart_service.medium": 3}
    restart = Tool.objects.get(name="restart_service")
    for variant in Tool.objects.filter(name__in=VARIANTS):
        assert (variant.args_schema, variant.has_side_effect) == (restart.args_schema, True)
    # An admin who took restarts away did not want them back (the low-risk one needs no reviewer).
    assert _tools(no_restarts) == ["escalate_to_human"] and _grants(no_restarts) == []
    assert _tools(triage) == triage_tools and _grants(triage) == []
    [grant] = _grants(old)
    assert (grant.actor_type, grant.actor_label) == ("system", "migration")
    assert grant.data["from"] == ["escalate_to_human", "restart_service"]
    assert grant.data["to"] == sorted(OpsAgent.tools)

    # Again: nothing to add, nothing recorded.
    recorded = AuditEvent.objects.count()
    _migrate(BEFORE)
    _migrate(MIGRATION)
    assert _tools(old) == sorted(OpsAgent.tools)
    assert AuditEvent.objects.count() == recorded
