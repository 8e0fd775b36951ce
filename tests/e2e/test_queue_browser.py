"""The reviewer's queue in a real browser against a real server and worker: a request appears
on the open "My queue" without a reload, the reviewer opens it and approves it from the decide
page with the keyboard, the task completes, and the request leaves a colleague's open team
queue, again without a reload."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from django.contrib.auth.models import User

from agents.models import Task
from config.connection import connection
from hitl.models import ApprovalRequest, ReviewerProfile
from tenants.models import Tenant
from tenants.services import provision_request_build, tenant_provision
from tests.agents.helpers_execution import wait_for_state
from tests.conftest import PASSWORD, WorkerHandle
from tests.live.conftest import api, token

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REFUND = {
    "text": "Please refund 25 EUR for order #AB1234, the mug arrived broken",
    "customer_email": "dana@example.com",
}


def _demo_tenant() -> tuple[str, str]:
    """A new demo tenant (its agents, admin and reviewer) whose reviewer takes requests."""
    label = f"queue{uuid.uuid4().hex[:8]}"
    domain = f"{label}.localhost"
    tenant_provision(
        request=provision_request_build(
            name="Queue",
            domain=domain,
            tier="professional",
            admin_email=f"admin@{domain}",
            admin_password=PASSWORD,
            demo=True,
        )
    )
    connection.set_tenant(Tenant.objects.get(schema_name=label))
    reviewer = User.objects.get(username=f"reviewer@{domain}")
    reviewer.is_staff = True
    reviewer.save(update_fields=["is_staff"])
    ReviewerProfile.objects.get_or_create(user=reviewer, defaults={"capacity": 5, "available": True})
    connection.set_schema_to_public()
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


def _run_refund(port: int, host: str, admin: str) -> int:
    admin_token = token(port, host, admin)
    status, agents = api(port, host, "GET", "/api/v1/agents/?blueprint=resolution", token=admin_token)
    assert status == 200 and agents["results"], agents
    status, body = api(
        port,
        host,
        "POST",
        f"/api/v1/agents/{agents['results'][0]['id']}/execute/",
        token=admin_token,
        body={"input": REFUND},
    )
    assert status == 202, body
    return int(body["id"])


def test_a_request_appears_live_in_my_queue_and_the_reviewer_approves_it_with_the_keyboard(
    committed: None, celery_worker: WorkerHandle, web_server: int, browser: Browser, tmp_path: Path
) -> None:
    schema, domain = _demo_tenant()
    base, host = f"http://{domain}:{web_server}", f"{domain}:{web_server}"
    reviewer = _signed_in(browser, base, f"reviewer@{domain}")
    admin = _signed_in(browser, base, f"admin@{domain}")
    try:
        reviewer.goto(f"{base}/admin/hitl/approvalrequest/queue/")
        reviewer.wait_for_selector("text=live updates: on")
        assert reviewer.locator("#queue-empty").count() == 1
        reviewer.evaluate("window.vigilNoReload = true")
        admin.goto(f"{base}/admin/hitl/approvalrequest/team/")
        admin.wait_for_selector("text=live updates: on")
        admin.evaluate("window.vigilNoReload = true")

        task_id = _run_refund(web_server, host, f"admin@{domain}")

        # The worker stops at the gated refund; the request is assigned to the reviewer and
        # shows up on both open pages without a reload.
        row = f'#queue tr[data-task-id="{task_id}"]'
        reviewer.wait_for_selector(row)
        admin.wait_for_selector(row)
        assert reviewer.evaluate("window.vigilNoReload") is True
        assert "issue_refund" in reviewer.inner_text(row)
        # Its deadline counts down on the page.
        due = f"{row} time[data-due]"
        shown = reviewer.inner_text(due)
        assert shown.startswith("in ")
        reviewer.wait_for_function("([sel, was]) => document.querySelector(sel).textContent !== was", arg=[due, shown])
        reviewer.screenshot(path=str(tmp_path / "queue.png"), full_page=True)

        # The keyboard: j moves to the first request, Enter opens it, "a" approves it.
        reviewer.keyboard.press("j")
        reviewer.keyboard.press("Enter")
        reviewer.wait_for_url(re.compile(r".*/admin/hitl/approvalrequest/\d+/decide/"))
        reviewer.wait_for_selector("#decision-form")
        assert "AB1234" in reviewer.inner_text("#proposed-arguments")
        reviewer.screenshot(path=str(tmp_path / "decide.png"), full_page=True)
        reviewer.keyboard.press("a")
        reviewer.wait_for_selector(".messagelist .success")
        assert "approved" in reviewer.inner_text(".messagelist .success")

        # The decided request leaves the colleague's open team queue, still without a reload.
        admin.wait_for_selector(row, state="detached")
        assert admin.evaluate("window.vigilNoReload") is True
        admin.screenshot(path=str(tmp_path / "team-queue.png"), full_page=True)
    finally:
        reviewer.close()
        admin.close()

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    task = wait_for_state(task_id, {"verified"})
    assert [(s.action, s.decision) for s in task.steps.order_by("index")] == [
        ("classify", "record"),
        ("draft", "record"),
        ("issue_refund", "approved"),
        ("send_reply", "allow"),
    ]
    approval = ApprovalRequest.objects.get(task=task)
    assert approval.status == "approved"
    assert approval.decided_by is not None and approval.decided_by.username == f"reviewer@{domain}"
    assert Task.objects.get(pk=task_id).state == "verified"
