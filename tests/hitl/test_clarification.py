"""Clarification: a reviewer asks the requester a question (POST /api/v1/hitl/{id}/clarify/ or
the decision page's Ask), the task keeps waiting with the SLA clock stopped, the requester
answers (POST …/answer/), the request goes back to the reviewer's queue with the questions and
answers in its history, and a decision resumes the run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone

from agents.models import Agent, Task
from agents.services import task_cancel, task_submit
from config.connection import connection
from governance.models import AuditEvent
from governance.roles import user_roles_set
from hitl.clarification import clarification_answer, clarification_ask
from hitl.ladder import approvals_sla_sweep
from hitl.models import ApprovalRequest, Clarification
from hitl.policies import policy_create
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in, task_drive, token_for
from tests.agents.helpers_execution import FINAL, resolution_agent, steps_of, unique, use_tenant, wait_for_state
from tests.conftest import ALICE, BOB, PASSWORD, REFUND_TICKET, RITA, WorkerHandle

from .support import profile, refund_agent, reviewer, staff

Capture = Callable[..., Any]


def _post(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, body, content_type="application/json")


def _clarify(client: Client, request: ApprovalRequest, question: str) -> Any:
    return _post(client, f"/api/v1/hitl/{request.pk}/clarify/", {"question": question})


def _answer(client: Client, request: ApprovalRequest, answer: str) -> Any:
    return _post(client, f"/api/v1/hitl/{request.pk}/answer/", {"answer": answer})


def _requested_by(tenant: Tenant, agent: Agent, requester: User) -> ApprovalRequest:
    """A refund requested by ``requester``, waiting at its approval gate (advanced in this process)."""
    task = task_drive(task_submit(agent_id=agent.pk, input=REFUND_TICKET, user=requester), {"awaiting_approval"})
    return ApprovalRequest.objects.get(task=task)


def _token_client(username: str) -> Client:
    return Client(
        HTTP_HOST="acme.localhost",
        HTTP_AUTHORIZATION=f"Token {token_for(Client(HTTP_HOST='acme.localhost'), username)}",
    )


# ------------------------------------------------------------------ the round trip
def test_ask_answer_approve_on_a_real_worker(committed: None, celery_worker: WorkerHandle) -> None:
    acme = use_tenant("acme")
    name = unique("requester") + "@acme.example"
    requester = User.objects.create_user(name, name, PASSWORD)
    user_roles_set(user=requester, roles=["agent_manager"], actor=None)
    agent = resolution_agent()
    task = task_submit(agent_id=agent.pk, input=REFUND_TICKET, user=requester)
    waiting = wait_for_state(task.pk, {"awaiting_approval"} | FINAL)
    assert waiting.state == "awaiting_approval", waiting.last_error
    request = ApprovalRequest.objects.get(task=task)
    due = request.due_at
    assert due is not None
    rita = _token_client(RITA)
    mail.outbox.clear()

    asked = _clarify(rita, request, "Did the customer send a photo of the broken parcel?")
    assert asked.status_code == 201, asked.content
    assert asked.json()["asked_by"] == RITA and asked.json()["answered_at"] is None
    request.refresh_from_db()
    assert (request.status, request.due_at, request.remind_at) == ("clarification", None, None)
    assert Task.objects.get(pk=task.pk).state == "awaiting_approval"
    assert [m.to for m in mail.outbox] == [[requester.email]]
    assert "Did the customer send a photo" in mail.outbox[0].body

    asker = _token_client(requester.username)
    mine = asker.get("/api/v1/hitl/clarifications/?mine=1").json()["results"]
    assert [(q["approval"], q["question"]) for q in mine] == [
        (request.pk, "Did the customer send a photo of the broken parcel?")
    ]
    answered = _answer(asker, request, "Yes, two photos, attached to the ticket.")
    assert answered.status_code == 200, answered.content
    assert answered.json()["answered_by"] == requester.username
    assert asker.get("/api/v1/hitl/clarifications/?mine=1").json()["results"] == []
    request.refresh_from_db()
    assert request.status in ("pending", "assigned")
    assert request.due_at is not None and request.due_at > due  # the clock stopped while waiting
    assert [m.to for m in mail.outbox][-1] == [User.objects.get(username=RITA).email]

    detail = rita.get(f"/api/v1/hitl/{request.pk}/").json()
    assert [(c["question"], c["answer"]) for c in detail["clarifications"]] == [
        ("Did the customer send a photo of the broken parcel?", "Yes, two photos, attached to the ticket.")
    ]
    assert [e["kind"] for e in detail["history"] if e["kind"] in ("asked", "answered")] == ["asked", "answered"]
    page = signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA).get(
        f"/admin/hitl/approvalrequest/{request.pk}/decide/"
    )
    assert page.status_code == 200
    assert "Did the customer send a photo" in page.content.decode() and "Yes, two photos" in page.content.decode()

    decided = _post(
        rita, f"/api/v1/hitl/{request.pk}/respond/", {"verdict": "approve", "action_hash": request.action_hash}
    )
    assert decided.status_code == 200, decided.content
    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert ("issue_refund", "approved") in steps_of(done)
    verbs = set(
        AuditEvent.objects.filter(target_type="approval", target_id=str(request.pk)).values_list("verb", flat=True)
    )
    assert {"approval.clarification_asked", "approval.clarification_answered", "approval.approved"} <= verbs


# ---------------------------------------------------------------- in one process
def test_the_sla_clock_stops_while_the_question_waits_and_restarts_from_the_answer(acme: Tenant) -> None:
    max_ = member_add(acme, "max@acme.example", "agent_manager")
    request = _requested_by(acme, refund_agent(acme), max_)
    asked_at = timezone.now()
    due, remind = request.due_at, request.remind_at
    assert due is not None and remind is not None
    clarification_ask(approval_id=request.pk, user=User.objects.get(username=RITA), question="Which?", now=asked_at)
    # Long past the deadline, the ladder leaves the waiting request alone.
    swept = approvals_sla_sweep(now=due + timedelta(days=3))
    assert (swept.reminded, swept.escalated, swept.closed) == (0, 0, 0)
    request.refresh_from_db()
    assert request.status == "clarification"
    answered_at = asked_at + timedelta(hours=5)
    clarification_answer(approval_id=request.pk, user=max_, answer="AB1234", now=answered_at)
    request.refresh_from_db()
    assert request.status == "pending"
    assert (request.due_at, request.remind_at) == (due + timedelta(hours=5), remind + timedelta(hours=5))


def test_the_answer_hands_the_request_back_to_the_reviewer_who_had_it(
    acme: Tenant, django_capture_on_commit_callbacks: Capture
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    max_ = member_add(acme, "max@acme.example", "agent_manager")
    request = _requested_by(acme, refund_agent(acme), max_)
    assert request.assignee == ann and profile(ann).open_count == 1
    clarification_ask(approval_id=request.pk, user=ann, question="Which order?")
    request.refresh_from_db()
    # Still theirs, waiting; the slot is free for other work meanwhile.
    assert (request.status, request.assignee, profile(ann).open_count) == ("clarification", ann, 0)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        clarification_answer(approval_id=request.pk, user=max_, answer="AB1234")
    request.refresh_from_db()
    assert (request.status, request.assignee, profile(ann).open_count) == ("assigned", ann, 1)
    assert ann.email in [address for m in mail.outbox for address in m.to]


def test_only_the_requester_or_an_admin_answers(acme: Tenant, acme_client: Client) -> None:
    max_ = member_add(acme, "max@acme.example", "agent_manager")
    other = member_add(acme, "olive@acme.example", "agent_manager")
    request = _requested_by(acme, refund_agent(acme), max_)
    clarification_ask(approval_id=request.pk, user=User.objects.get(username=RITA), question="Which order?")
    for username in (RITA, other.username):
        refused = _answer(signed_in(Client(HTTP_HOST="acme.localhost"), acme, username), request, "AB1234")
        assert (refused.status_code, refused.json()["code"]) == (403, "approval_forbidden")
        assert refused.json()["extra"] == {"rule": "requester"}
    request.refresh_from_db()
    assert request.status == "clarification"
    admin = _answer(signed_in(acme_client, acme, ALICE), request, "AB1234, said the customer on the phone")
    assert admin.status_code == 200 and admin.json()["answered_by"] == ALICE


def test_a_viewer_cannot_ask_and_a_requester_cannot_ask_about_their_own_task(acme: Tenant) -> None:
    max_ = member_add(acme, "max@acme.example", "agent_manager")
    request = _requested_by(acme, refund_agent(acme), max_)
    member_add(acme, "vic@acme.example", "viewer")
    viewer = _clarify(signed_in(Client(HTTP_HOST="acme.localhost"), acme, "vic@acme.example"), request, "Why?")
    assert viewer.status_code == 403
    boss = staff(acme, "boss@acme.example", "admin")
    own = _requested_by(acme, refund_agent(acme, "own-refunds"), boss)
    mine = _clarify(signed_in(Client(HTTP_HOST="acme.localhost"), acme, boss.username), own, "Why?")
    assert (mine.status_code, mine.json()["extra"]["rule"]) == (403, "requester")
    assert not Clarification.objects.filter(approval__in=[request, own]).exists()


def test_another_tenant_gets_404(acme: Tenant, beta: Tenant, beta_client: Client) -> None:
    max_ = member_add(acme, "max@acme.example", "agent_manager")
    request = _requested_by(acme, refund_agent(acme), max_)
    clarification_ask(approval_id=request.pk, user=User.objects.get(username=RITA), question="Which order?")
    bob = Client(HTTP_HOST="beta.localhost", HTTP_AUTHORIZATION=f"Token {token_for(beta_client, BOB)}")
    assert _clarify(bob, request, "Why?").status_code == 404
    assert _answer(bob, request, "mine now").status_code == 404
    assert bob.get("/api/v1/hitl/clarifications/").json()["results"] == []
    connection.set_tenant(acme)
    assert Clarification.objects.get(approval=request).answered_at is None


def test_the_errors_name_the_problem(acme: Tenant, acme_client: Client) -> None:
    max_ = member_add(acme, "max@acme.example", "agent_manager")
    request = _requested_by(acme, refund_agent(acme), max_)
    rita = signed_in(acme_client, acme, RITA)
    requester = signed_in(Client(HTTP_HOST="acme.localhost"), acme, max_.username)
    empty = _clarify(rita, request, "")
    assert (empty.status_code, list(empty.json()["extra"]["fields"])) == (400, ["question"])
    nothing_asked = _answer(requester, request, "AB1234")
    assert (nothing_asked.status_code, nothing_asked.json()["code"]) == (409, "clarification_not_open")
    assert _clarify(rita, request, "Which order?").status_code == 201
    twice = _clarify(rita, request, "And the amount?")
    assert (twice.status_code, twice.json()["code"]) == (409, "clarification_open")
    assert _answer(requester, request, "").status_code == 400
    task_cancel(task_id=request.task_id, user=None)
    request.refresh_from_db()
    assert request.status == "cancelled"
    late = _answer(requester, request, "AB1234")
    assert (late.status_code, late.json()["code"]) == (409, "approval_already_decided")
    assert requester.get("/api/v1/hitl/clarifications/?mine=1").json()["results"] == []
    closed = _clarify(rita, request, "Still there?")
    assert (closed.status_code, closed.json()["code"]) == (409, "approval_already_decided")


def test_the_decision_page_asks_and_shows_the_questions(acme: Tenant, acme_client: Client) -> None:
    max_ = member_add(acme, "max@acme.example", "agent_manager")
    request = _requested_by(acme, refund_agent(acme), max_)
    client = signed_in(acme_client, acme, RITA)
    decide = f"/admin/hitl/approvalrequest/{request.pk}/decide/"
    page = client.get(decide).content.decode()
    assert 'id="clarify-form"' in page
    response = client.post(f"/admin/hitl/approvalrequest/{request.pk}/clarify/", {"question": "Is it AB1234?"})
    assert response.status_code == 302 and response["Location"].endswith(decide)
    request.refresh_from_db()
    assert request.status == "clarification"
    page = client.get(decide).content.decode()
    assert "Is it AB1234?" in page and "Waiting for the requester" in page
    assert 'id="clarify-form"' not in page and 'id="escalate-form"' not in page
    clarification_answer(approval_id=request.pk, user=max_, answer="It is.")
    assert "It is." in client.get(decide).content.decode()
    # A decision after the answer resumes the task as usual.
    client.post(decide, {"verdict": "approve", "action_hash": request.action_hash})
    request.refresh_from_db()
    assert request.status == "approved"
    assert Task.objects.get(pk=request.task_id).state == "in_progress"


def test_while_the_question_waits_the_request_keeps_its_stopped_clock_and_is_not_moved(
    acme: Tenant, acme_client: Client
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    two = {"conditions": {"tools": ["issue_refund"]}, "quorum": 2}
    policy_create(name="two-for-refunds", content=two, user=User.objects.get(username=ALICE))
    max_ = member_add(acme, "max@acme.example", "agent_manager")
    request = _requested_by(acme, refund_agent(acme), max_)
    assert (request.quorum, request.assignee) == (2, ann)
    clarification_ask(approval_id=request.pk, user=ann, question="Which order?")

    # A vote short of the quorum leaves the question open and the clock stopped.
    voted = _post(
        signed_in(acme_client, acme, ann.username),
        f"/api/v1/hitl/{request.pk}/approve/",
        {"action_hash": request.action_hash},
    )
    assert voted.status_code == 200, voted.content
    connection.set_tenant(acme)
    request.refresh_from_db()
    assert (request.status, request.due_at, request.remind_at) == ("clarification", None, None)
    # Nobody claims, releases or reassigns it before the answer.
    claimed = _post(signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA), f"/api/v1/hitl/{request.pk}/claim/", {})
    assert (claimed.status_code, claimed.json()["code"]) == (409, "approval_awaiting_clarification")

    clarification_answer(approval_id=request.pk, user=max_, answer="AB1234")
    request.refresh_from_db()
    assert request.status in ("pending", "assigned") and request.due_at is not None
    assert request.assignee != ann  # who voted is not handed it again
