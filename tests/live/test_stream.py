"""The live stream against a real uvicorn server (two worker processes) and a real websocket
client: who may open a socket, and which events reach it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client
from websockets.exceptions import InvalidStatus

from agents.models import Agent
from agents.services import agent_create, task_submit
from config.connection import connection
from governance.roles import user_agent_scope_set
from tenants.models import Tenant
from tests.conftest import ALICE, BILLING_TICKET, BOB, PASSWORD
from tests.live.conftest import frames, open_socket, ticket, token, unique

pytestmark = pytest.mark.usefixtures("committed", "live_layer")


@pytest.fixture
def hosts(web_server: int) -> Iterator[tuple[int, str, str]]:
    yield web_server, f"acme.localhost:{web_server}", f"beta.localhost:{web_server}"


def _agent(schema: str, name: str) -> Agent:
    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    return agent_create(name=unique(name), blueprint="triage")


def _submit(schema: str, agent: Agent) -> int:
    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    task = task_submit(agent_id=agent.pk, input=BILLING_TICKET)
    connection.set_schema_to_public()
    return task.pk


def _refused(port: int, host: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refused:
        open_socket(port, host, **kwargs)
    return refused.value.response.status_code


def _task_frames(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [frame for frame in received if frame["type"].startswith("task.")]


def test_a_socket_without_credentials_is_refused_before_accept(hosts: tuple[int, str, str]) -> None:
    port, acme, _ = hosts
    assert _refused(port, acme) == 403
    assert _refused(port, acme, origin=f"http://{acme}") == 403
    assert _refused(port, acme, subprotocols=["vigil.live", "vigil.ticket.made-up"]) == 403


def test_a_socket_from_another_sites_page_is_refused_even_with_the_users_session_or_ticket(
    hosts: tuple[int, str, str],
) -> None:
    port, acme, _ = hosts
    protocols = ticket(port, acme, token(port, acme, ALICE))
    assert _refused(port, acme, subprotocols=protocols, origin="http://evil.example") == 403
    assert _refused(port, acme, subprotocols=protocols, origin=f"http://acme.localhost:{port + 1}") == 403
    # The ticket was not spent by the refused attempt: it still opens a socket from the same origin.
    with open_socket(port, acme, subprotocols=protocols, origin=f"http://{acme}") as ws:
        assert ws.subprotocol == "vigil.live"


def test_a_session_opens_a_socket_only_from_its_own_origin(hosts: tuple[int, str, str]) -> None:
    port, acme, _ = hosts
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    client = Client(HTTP_HOST="acme.localhost")
    assert client.login(username=ALICE, password=PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    with open_socket(port, acme, origin=f"http://{acme}", cookie=cookie) as ws:
        assert frames(ws, seconds=0.5)[0]["type"] == "hello"
    # Without an Origin the client is no browser: cookies alone are not credentials then.
    assert _refused(port, acme, cookie=cookie) == 403
    assert _refused(port, acme, origin="http://evil.example", cookie=cookie) == 403


def test_a_ticket_opens_one_socket_only(hosts: tuple[int, str, str]) -> None:
    port, acme, _ = hosts
    protocols = ticket(port, acme, token(port, acme, ALICE))
    with open_socket(port, acme, subprotocols=protocols) as ws:
        assert frames(ws, seconds=0.5)[0]["type"] == "hello"
    assert _refused(port, acme, subprotocols=protocols) == 403


def test_a_ticket_of_acme_is_refused_on_betas_host(hosts: tuple[int, str, str]) -> None:
    port, acme, beta = hosts
    protocols = ticket(port, acme, token(port, acme, ALICE))
    assert _refused(port, beta, subprotocols=protocols) == 403
    # Nor can acme's token ask beta for a ticket.
    from tests.live.conftest import api

    status, _ = api(port, beta, "POST", "/api/v1/live/ticket/", token=token(port, acme, ALICE))
    assert status == 401


def test_a_socket_on_beta_never_receives_acmes_events(hosts: tuple[int, str, str]) -> None:
    port, acme, beta = hosts
    agent = _agent("acme", "live-tenant")
    with (
        open_socket(port, acme, subprotocols=ticket(port, acme, token(port, acme, ALICE))) as acme_ws,
        open_socket(port, beta, subprotocols=ticket(port, beta, token(port, beta, BOB))) as beta_ws,
    ):
        frames(acme_ws, seconds=0.2), frames(beta_ws, seconds=0.2)
        task_id = _submit("acme", agent)
        # A worker may be running other tests' tasks: look at this task's frames.
        seen = [frame for frame in _task_frames(frames(acme_ws, seconds=1.5)) if frame["task_id"] == task_id]
        assert seen and seen[0]["agent_id"] == agent.pk and seen[0]["type"] == "task.state"
        assert [frame["seq"] for frame in seen] == sorted(frame["seq"] for frame in seen)
        on_beta = _task_frames(frames(beta_ws, seconds=0.5))
        assert [frame for frame in on_beta if frame["task_id"] == task_id or frame["agent_id"] == agent.pk] == []


def test_a_reviewer_scoped_to_one_agent_receives_only_that_agents_events(hosts: tuple[int, str, str]) -> None:
    port, acme, _ = hosts
    mine, other = _agent("acme", "live-mine"), _agent("acme", "live-other")
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    reviewer = User.objects.create_user(unique("rev") + "@acme.example", password=PASSWORD)
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    with transaction.atomic():
        user_agent_scope_set(
            user=reviewer, grant="review_agent", agent_ids=[mine.pk], actor=User.objects.get(username=ALICE)
        )
    with (
        open_socket(port, acme, subprotocols=ticket(port, acme, token(port, acme, reviewer.username))) as scoped_ws,
        open_socket(port, acme, subprotocols=ticket(port, acme, token(port, acme, ALICE))) as admin_ws,
    ):
        frames(scoped_ws, seconds=0.2), frames(admin_ws, seconds=0.2)
        other_task, my_task = _submit("acme", other), _submit("acme", mine)
        admin_seen = _task_frames(frames(admin_ws, seconds=1.5))
        scoped_seen = _task_frames(frames(scoped_ws, seconds=0.3))
    assert {other_task, my_task} <= {frame["task_id"] for frame in admin_seen}
    assert my_task in {frame["task_id"] for frame in scoped_seen}
    assert {frame["agent_id"] for frame in scoped_seen} == {mine.pk}
