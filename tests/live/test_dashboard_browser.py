"""The live admin pages in a real browser against a real server and worker: a task created
through the API appears on the open dashboard and changes state there, and a task's page shows
its new state and steps once a reviewer approves, all without a reload."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from agents.models import Task
from agents.services import agent_create
from config.connection import connection
from tenants.models import Tenant
from tenants.services import provision_request_build, tenant_provision
from tests.agents.helpers_execution import wait_for_state
from tests.conftest import BILLING_TICKET, PASSWORD, WorkerHandle
from tests.live.conftest import api, token

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def _tenant(*, demo: bool) -> tuple[str, str]:
    """A new tenant (the demo's agents and reviewer when ``demo``): its schema and domain."""
    label = f"live{uuid.uuid4().hex[:8]}"
    domain = f"{label}.localhost"
    tenant_provision(
        request=provision_request_build(
            name="Live",
            domain=domain,
            tier="professional",
            admin_email=f"admin@{domain}",
            admin_password=PASSWORD,
            demo=demo,
        )
    )
    return label, domain


def _signed_in(browser: Browser, base: str, username: str) -> Page:
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def test_a_task_created_through_the_api_appears_on_the_open_dashboard_and_changes_state(
    committed: None, celery_worker: WorkerHandle, web_server: int, browser: Browser, tmp_path: Path
) -> None:
    label, domain = _tenant(demo=False)
    admin = f"admin@{domain}"
    connection.set_tenant(Tenant.objects.get(schema_name=label))
    agent = agent_create(name="triage-live", blueprint="triage")
    connection.set_schema_to_public()
    base, host = f"http://{domain}:{web_server}", f"{domain}:{web_server}"

    page = _signed_in(browser, base, admin)
    try:
        page.wait_for_selector("#vigil-dashboard")
        page.wait_for_selector("text=live updates: on")
        assert page.inner_text('[data-list="tasks_by_state"]').strip() == "No tasks yet."
        page.evaluate("window.vigilNoReload = true")

        status, body = api(
            web_server,
            host,
            "POST",
            f"/api/v1/agents/{agent.pk}/execute/",
            token=token(web_server, host, admin),
            body={"input": BILLING_TICKET},
        )
        assert status == 202, body

        page.wait_for_selector('[data-list="tasks_by_state"] tr[data-state="verified"]')
        assert page.inner_text('[data-list="tasks_by_state"] tr[data-state="verified"] td') == "1"
        page.wait_for_selector('[data-list="audit"] >> text=task.transition', state="attached")
        assert page.evaluate("window.vigilNoReload") is True
        assert page.inner_text('[data-figure="in_flight"]') == "0"
        # Usage against the tenant's limits, redrawn with the rest.
        assert page.inner_text('[data-list="usage"] tr[data-limit="runs_per_day"] td:nth-child(2)') == "1"
        assert page.inner_text('[data-list="usage"] tr[data-limit="max_agents"] td:nth-child(3)') == "50"
    finally:
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        page.close()


def test_a_task_page_shows_the_new_state_and_steps_after_a_reviewer_approves_without_a_reload(
    committed: None, celery_worker: WorkerHandle, web_server: int, browser: Browser, tmp_path: Path
) -> None:
    schema, domain = _tenant(demo=True)
    base, host = f"http://{domain}:{web_server}", f"{domain}:{web_server}"
    admin_token = token(web_server, host, f"admin@{domain}")
    status, agents = api(web_server, host, "GET", "/api/v1/agents/?blueprint=resolution", token=admin_token)
    assert status == 200 and agents["results"], agents
    status, body = api(
        web_server,
        host,
        "POST",
        f"/api/v1/agents/{agents['results'][0]['id']}/execute/",
        token=admin_token,
        body={
            "input": {
                "text": "Please refund 25 EUR for order #AB1234, it arrived broken",
                "customer_email": "dana@example.com",
            }
        },
    )
    assert status == 202, body
    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    task = wait_for_state(body["id"], {"awaiting_approval"})
    approval = task.approvals.get()
    connection.set_schema_to_public()

    page = _signed_in(browser, base, f"admin@{domain}")
    try:
        page.goto(f"{base}/admin/agents/task/{task.pk}/change/")
        page.wait_for_selector("text=live updates: on")
        assert page.get_attribute("[data-task-state]", "data-task-state") == "awaiting_approval"
        assert page.locator("text=send_reply").count() == 0
        page.evaluate("window.vigilNoReload = true")

        status, decided = api(
            web_server,
            host,
            "POST",
            f"/api/v1/hitl/{approval.pk}/approve/",
            token=token(web_server, host, f"reviewer@{domain}"),
            body={"action_hash": approval.action_hash},
        )
        assert status == 200, decided

        page.wait_for_selector('[data-task-state="verified"]')
        page.wait_for_selector(".inline-group >> text=send_reply")
        assert page.evaluate("window.vigilNoReload") is True
    finally:
        page.screenshot(path=str(tmp_path / "task.png"), full_page=True)
        page.close()
    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    assert Task.objects.get(pk=task.pk).state == "verified"
