"""Sequence numbers on a real server's stream: a skipped number makes the socket send
``resync`` before the next event (the page then refetches), and a tenant-wide event (usage near
a limit) reaches a reviewer scoped to one agent."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from agents.events import publish
from config.connection import connection
from governance import live
from governance.roles import user_agent_scope_set
from tenants.models import Tenant
from tests.agents.api_support import member_add
from tests.conftest import ALICE
from tests.hitl.support import refund_agent
from tests.live.conftest import frames, open_socket, ticket, token, unique

pytestmark = pytest.mark.usefixtures("committed", "live_layer")


def test_a_skipped_number_sends_resync_and_usage_near_a_limit_reaches_a_scoped_reviewer(web_server: int) -> None:
    acme = Tenant.objects.get(schema_name="acme")
    host = f"acme.localhost:{web_server}"
    agent = refund_agent(acme, unique("live-resync"))
    reviewer = member_add(acme, unique("rev") + "@acme.example", "reviewer")
    with transaction.atomic():
        user_agent_scope_set(
            user=reviewer, grant="review_agent", agent_ids=[agent.pk], actor=User.objects.get(username=ALICE)
        )
    marker = unique("limit")
    with open_socket(
        web_server, host, subprotocols=ticket(web_server, host, token(web_server, host, reviewer.username))
    ) as ws:
        (hello,) = [frame for frame in frames(ws, seconds=0.3) if frame["type"] == "hello"]
        skipped = live.sequence_next(schema="acme")  # a number no event will carry, as a lost message leaves
        connection.set_tenant(acme)
        with transaction.atomic():
            publish("usage.near_limit", limit=marker, used=9, max=10)
        received = frames(ws, seconds=1.5)
    (event,) = [frame for frame in received if frame.get("limit") == marker]
    assert (event["type"], event["used"], event["max"], event["agent_id"]) == ("usage.near_limit", 9, 10, None)
    assert skipped >= hello["seq"] + 1 and event["seq"] > skipped
    resyncs = [frame for frame in received if frame["type"] == "resync"]
    assert resyncs and skipped < resyncs[0]["seq"] <= event["seq"]
    assert received.index(resyncs[0]) < received.index(event)
