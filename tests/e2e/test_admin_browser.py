"""The demo's promise, in a real browser against a real server and worker: the tenant admin
runs an agent on a ticket, the reviewer approves the refund it proposes (the admin, who asked
for the task, may not), and the task page shows each step."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from agents.models import OutboxMessage, Task
from config.connection import connection
from tenants.models import Tenant
from tenants.services import provision_request_build, tenant_provision
from tests.conftest import PASSWORD, WorkerHandle

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def _demo_tenant() -> tuple[str, str]:
    label = f"e2e{uuid.uuid4().hex[:8]}"
    domain = f"{label}.localhost"
    request = provision_request_build(
        name="E2E Demo",
        domain=domain,
        tier="professional",
        admin_email=f"admin@{domain}",
        admin_password=PASSWORD,
        demo=True,
    )
    tenant_provision(request=request)
    return domain, label


def _signed_in(browser: Browser, base: str, username: str) -> Page:
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def test_admin_runs_an_agent_the_reviewer_approves_its_refund_and_every_step_shows(
    committed: None, celery_worker: WorkerHandle, web_server: int, browser: Browser, tmp_path: Path
) -> None:
    domain, schema = _demo_tenant()
    base = f"http://{domain}:{web_server}"
    page = _signed_in(browser, base, f"admin@{domain}")
    reviewer = None
    try:
        page.goto(f"{base}/admin/agents/agent/")
        page.click("text=resolver")
        page.click("text=Run this agent on a ticket or event")
        page.fill(
            "#id_input",
            '{"text": "Please refund 25 EUR for order #AB1234, the mug arrived broken", '
            '"customer_email": "dana@example.com"}',
        )
        page.click("input[value=Run]")
        page.wait_for_url(re.compile(r".*/admin/agents/task/\d+/change/"))
        task_match = re.search(r"/task/(\d+)/", page.url)
        assert task_match is not None, page.url
        task_id = int(task_match.group(1))

        # The worker runs the first steps and stops at the gated refund.
        for _ in range(100):
            page.reload()
            if page.locator("a:has-text('issue_refund (pending)')").count():
                break
            page.wait_for_timeout(200)
        page.click("a:has-text('issue_refund (pending)')")
        page.wait_for_url(re.compile(r".*/admin/hitl/approvalrequest/\d+/change/"))
        assert page.locator("text=Decide…").count() == 0  # the admin asked for this task
        approval_url = page.url

        reviewer = _signed_in(browser, base, f"reviewer@{domain}")
        reviewer.goto(approval_url)
        reviewer.click("text=Decide…")
        reviewer.wait_for_selector("#decision-form")
        assert "AB1234" in reviewer.content()
        reviewer.click("text=Approve exactly this action")
        reviewer.wait_for_selector(".messagelist .success")

        page.goto(f"{base}/admin/agents/task/{task_id}/change/")
        for _ in range(100):
            page.wait_for_load_state()
            if "Verified" in page.content():
                break
            page.wait_for_timeout(200)
            page.reload()
        page.screenshot(path=str(tmp_path / "task.png"), full_page=True)
        content = page.content()
        for action in ("classify", "draft", "issue_refund", "send_reply"):
            assert action in content
        assert "Verified" in content
    finally:
        page.close()
        if reviewer is not None:
            reviewer.close()

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    task = Task.objects.get(pk=task_id)
    assert task.state == "verified"
    assert [(s.action, s.decision) for s in task.steps.order_by("index")] == [
        ("classify", "record"),
        ("draft", "record"),
        ("issue_refund", "approved"),
        ("send_reply", "allow"),
    ]
    assert sorted(OutboxMessage.objects.filter(effect__task=task).values_list("kind", flat=True)) == ["refund", "reply"]
    approval = task.approvals.get()
    assert approval.decided_by is not None and approval.decided_by.username == f"reviewer@{domain}"
