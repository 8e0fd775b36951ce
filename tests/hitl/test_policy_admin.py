"""Approval policies in the admin: admins create a policy and change it (a change of rules is a
new version, listed read only; a change of flags is not), invalid rules are refused naming the
field, other roles read only; the decision page shows the quorum's progress."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from config.connection import connection
from governance.models import AuditEvent
from hitl.models import Policy
from hitl.policies import policy_create
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE, RITA

from .support import refund_agent, refund_waiting, reviewer, staff

ADD, LIST = "/admin/hitl/policy/add/", "/admin/hitl/policy/"
FORM: dict[str, Any] = {
    "name": "big-refunds",
    "description": "",
    "enabled": "on",
    "order": "10",
    "conditions": '{"tools": ["issue_refund"], "arguments": [{"argument": "amount", "gt": 20}]}',
    "gate": "approval",
    "approver_role": "reviewer",
    "quorum": "2",
    "priority": "",
    "sla_minutes": '{"medium": 60}',
    "ladder": "{}",
    "terminal": "expire",
    "reason": "two pairs of eyes",
    "versions-TOTAL_FORMS": "0",
    "versions-INITIAL_FORMS": "0",
}


def _admin(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, staff(acme, "adam@acme.example", "admin").username)


def test_an_admin_creates_a_policy_and_each_change_of_rules_is_a_new_version(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)
    assert client.get(ADD).status_code == 200
    created = client.post(ADD, FORM)
    assert created.status_code == 302, created.context and created.context["adminform"].form.errors
    policy = Policy.objects.get(name="big-refunds")
    assert policy.current is not None
    assert (policy.current.version, policy.current.quorum, policy.current.sla_minutes) == (1, 2, {"medium": 60})
    change = f"{LIST}{policy.pk}/change/"
    page = client.get(change)
    assert page.status_code == 200 and "two pairs of eyes" in page.content.decode()  # the versions, read only
    assert client.post(change, {**FORM, "quorum": "3", "reason": "three"}).status_code == 302
    assert client.post(change, {**FORM, "quorum": "3", "enabled": ""}).status_code == 302
    policy.refresh_from_db()
    assert policy.current is not None and (policy.current.version, policy.current.quorum, policy.enabled) == (
        2,
        3,
        False,
    )
    verbs = list(
        AuditEvent.objects.filter(target_type="policy", target_id=str(policy.pk))
        .order_by("seq")
        .values_list("verb", flat=True)
    )
    assert verbs == ["policy.created", "policy.versioned", "policy.disabled"]


def test_invalid_rules_are_refused_in_the_form_naming_the_field(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)
    response = client.post(ADD, {**FORM, "terminal": "auto_approve"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "terminal" in errors and "low risk" in errors["terminal"][0]
    assert not Policy.objects.filter(name="big-refunds").exists()


def test_a_reviewer_reads_a_policy_but_cannot_change_it(acme: Tenant, acme_client: Client) -> None:
    connection.set_tenant(acme)
    policy = policy_create(name="refunds", content={"quorum": 2}, user=User.objects.get(username=ALICE))
    client = signed_in(acme_client, acme, RITA)
    page = client.get(f"{LIST}{policy.pk}/change/")
    assert page.status_code == 200 and "Rules in force" in page.content.decode()
    assert client.post(f"{LIST}{policy.pk}/change/", {**FORM, "quorum": "1"}).status_code == 403
    assert client.get(ADD).status_code == 403
    policy.refresh_from_db()
    assert policy.current is not None and policy.current.version == 1


def test_the_decision_page_shows_the_votes_so_far_and_the_quorum(acme: Tenant, acme_client: Client) -> None:
    connection.set_tenant(acme)
    policy_create(
        name="two",
        content={"conditions": {"tools": ["issue_refund"]}, "quorum": 2},
        user=User.objects.get(username=ALICE),
    )
    request = refund_waiting(acme, refund_agent(acme))
    ann = reviewer(acme, "ann@acme.example")
    client = signed_in(acme_client, acme, ann.username)
    url = f"/admin/hitl/approvalrequest/{request.pk}/decide/"
    assert "0 of 2 approvals" in client.get(url).content.decode()
    voted = client.post(url, {"verdict": "approve", "action_hash": request.action_hash}, follow=True)
    assert "your approval is recorded (1 of 2 needed)" in voted.content.decode()
    page = signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA).get(url).content.decode()
    assert "1 of 2 approvals" in page and "ann@acme.example approve" in page
