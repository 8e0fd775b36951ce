"""Approval events on the live stream of a real server: a reminder, an assignment or a decision
reaches the reviewers of the request's agent and no reviewer scoped to another agent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from agents.models import Agent
from config.connection import connection
from governance.roles import user_agent_scope_set
from hitl.ladder import approvals_remind
from hitl.services import approval_decide
from tenants.models import Tenant
from tests.agents.api_support import member_add
from tests.conftest import ALICE
from tests.hitl.support import refund_agent, refund_opened_without_engine
from tests.live.conftest import frames, open_socket, ticket, token, unique

pytestmark = pytest.mark.usefixtures("committed", "live_layer")


def _scoped_reviewer(tenant: Tenant, agent: Agent) -> User:
    user = member_add(tenant, unique("rev") + "@acme.example", "reviewer")
    with transaction.atomic():
        user_agent_scope_set(
            user=user, grant="review_agent", agent_ids=[agent.pk], actor=User.objects.get(username=ALICE)
        )
    return user


def _approval_frames(received: list[dict[str, Any]], approval_id: int) -> list[str]:
    return [frame["type"] for frame in received if frame.get("approval_id") == approval_id]


def test_a_reminder_and_a_decision_reach_only_the_reviewers_of_the_requests_agent(web_server: int) -> None:
    acme = Tenant.objects.get(schema_name="acme")
    host = f"acme.localhost:{web_server}"
    mine, other = refund_agent(acme, unique("live-refunds")), refund_agent(acme, unique("live-other"))
    ours, theirs = _scoped_reviewer(acme, mine), _scoped_reviewer(acme, other)
    with (
        open_socket(
            web_server, host, subprotocols=ticket(web_server, host, token(web_server, host, ours.username))
        ) as ours_ws,
        open_socket(
            web_server, host, subprotocols=ticket(web_server, host, token(web_server, host, theirs.username))
        ) as theirs_ws,
    ):
        frames(ours_ws, seconds=0.2), frames(theirs_ws, seconds=0.2)
        connection.set_tenant(acme)
        request = refund_opened_without_engine(mine)
        assert request.remind_at is not None
        # A reminder goes to the assignee; this one has none, so give it to our reviewer first.
        request.assignee = ours
        request.save(update_fields=["assignee"])
        assert approvals_remind(now=request.remind_at + timedelta(seconds=1)) >= 1
        approval_decide(approval_id=request.pk, user=ours, verdict="reject", note="not in this test")
        ours_seen = _approval_frames(frames(ours_ws, seconds=1.5), request.pk)
        theirs_seen = _approval_frames(frames(theirs_ws, seconds=0.3), request.pk)
    assert ours_seen == ["approval.requested", "approval.reminder", "approval.decided"]
    assert theirs_seen == []
