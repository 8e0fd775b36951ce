"""The knowledge app fills in what agents and tenants cannot import: the agents'
``knowledge.search`` tool, and the demo tenant's support agent."""

from __future__ import annotations

from agents.models import Agent, Tool
from agents.tools import TOOLS
from config.connection import connection
from knowledge.demo import demo_content_create
from knowledge.tools import SEARCH_TOOL
from tenants.hooks import _demo_content
from tenants.models import Tenant
from tenants.services import provision_request_build, tenant_provision
from tests.conftest import PASSWORD


def test_the_search_tool_is_registered_at_startup_and_mirrored_in_every_schema(acme: Tenant) -> None:
    connection.set_tenant(acme)

    assert TOOLS[SEARCH_TOOL].level == 1
    assert Tool.objects.get(name=SEARCH_TOOL).privilege_level == 1


def test_a_demo_tenant_gets_the_helpdesk_support_agent_with_the_search_tool(db: None) -> None:
    assert demo_content_create in _demo_content

    tenant_provision(
        request=provision_request_build(
            name="Delta",
            domain="delta.localhost",
            tier="starter",
            admin_email="dora@delta.example",
            admin_password=PASSWORD,
            demo=True,
        )
    )

    connection.set_tenant(Tenant.objects.get(schema_name="delta"))
    helpdesk = Agent.objects.get(name="helpdesk")
    assert helpdesk.blueprint == "support"
    assert sorted(helpdesk.tools.values_list("name", flat=True)) == ["escalate_to_human", SEARCH_TOOL, "send_reply"]
