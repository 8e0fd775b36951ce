"""Assignment: automatic to the least-loaded available reviewer who may decide the request, in
one locked query (two requests never take one reviewer's last slot); claim, release, reassign."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connections, transaction

from agents.services import task_submit
from config.connection import connection
from governance.models import AuditEvent
from hitl.assignment import approval_assign, approval_claim, approval_reassign, approval_release, assign_next
from hitl.exceptions import ApprovalForbidden, ReviewerAtCapacity
from hitl.models import ApprovalRequest, ReviewerProfile
from tenants.models import Tenant
from tests.agents.api_support import member_add, task_drive
from tests.agents.helpers_execution import unique, use_tenant
from tests.conftest import ALICE, REFUND_TICKET

from .support import profile, refund_agent, refund_opened_without_engine, refund_waiting, review_scope, reviewer


def test_a_new_request_goes_to_the_least_loaded_available_reviewer(
    acme: Tenant, django_capture_on_commit_callbacks: Callable[..., object]
) -> None:
    busy = reviewer(acme, "busy@acme.example")
    idle = reviewer(acme, "idle@acme.example")
    reviewer(acme, "away@acme.example", available=False)
    ReviewerProfile.objects.filter(user=busy).update(open_count=2)
    # Opened without the engine: executing the engine's callbacks would send step messages.
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        request = refund_opened_without_engine(refund_agent(acme))
    assert (request.status, request.assignee) == ("assigned", idle)
    assert (profile(idle).open_count, profile(busy).open_count) == (1, 2)
    assert list(request.history.values_list("kind", flat=True)) == ["opened", "assigned"]
    assert AuditEvent.objects.get(verb="approval.assigned", target_id=str(request.pk)).data["assignee"] == idle.username
    (sent,) = mail.outbox
    assert sent.to == [idle.email] and f"request {request.pk} is assigned to you" in sent.subject


def test_load_is_spread_over_reviewers_with_equal_room(acme: Tenant) -> None:
    first, second = reviewer(acme, "one@acme.example"), reviewer(acme, "two@acme.example")
    agent = refund_agent(acme)
    assignees = [refund_waiting(acme, agent).assignee for _ in range(4)]
    assert sorted(u.username for u in assignees if u) == sorted([first.username, second.username] * 2)


def test_nobody_is_assigned_when_every_reviewer_is_full_or_away(acme: Tenant) -> None:
    reviewer(acme, "full@acme.example", capacity=0)
    reviewer(acme, "away@acme.example", available=False)
    request = refund_waiting(acme, refund_agent(acme))
    assert (request.status, request.assignee) == ("pending", None)


def test_a_reviewer_scoped_to_other_agents_is_not_assigned(acme: Tenant) -> None:
    scoped = reviewer(acme, "scoped@acme.example")
    mine, other = refund_agent(acme, "refunds-eu"), refund_agent(acme, "refunds-us")
    review_scope(acme, scoped, mine)
    assert refund_waiting(acme, other).assignee is None
    assert refund_waiting(acme, mine).assignee == scoped


def test_the_requester_of_a_task_is_never_assigned_its_approval(acme: Tenant) -> None:
    asker = reviewer(acme, "asker@acme.example")
    agent = refund_agent(acme)
    task = task_drive(task_submit(agent_id=agent.pk, input=REFUND_TICKET, user=asker), {"awaiting_approval"})
    assert ApprovalRequest.objects.get(task=task).assignee is None


def test_a_viewer_with_a_profile_is_never_assigned(acme: Tenant) -> None:
    reviewer(acme, "vic@acme.example", role="viewer")
    assert refund_waiting(acme, refund_agent(acme)).assignee is None


def test_a_reviewer_claims_a_waiting_request_and_releases_it(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    claimer = member_add(acme, "claimer@acme.example", "reviewer")
    claimed = approval_claim(approval_id=request.pk, user=claimer)
    assert (claimed.status, claimed.assignee, profile(claimer).open_count) == ("assigned", claimer, 1)
    released = approval_release(approval_id=request.pk, user=claimer)
    assert (released.status, released.assignee, profile(claimer).open_count) == ("pending", None, 0)
    assert list(request.history.values_list("kind", flat=True)) == ["opened", "claimed", "released"]


def test_a_reviewer_cannot_claim_another_reviewers_request(acme: Tenant) -> None:
    holder = reviewer(acme, "holder@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    assert request.assignee == holder
    other = member_add(acme, "other@acme.example", "reviewer")
    with pytest.raises(ApprovalForbidden) as refused:
        approval_claim(approval_id=request.pk, user=other)
    assert refused.value.extra["rule"] == "assigned"
    with pytest.raises(ApprovalForbidden):
        approval_release(approval_id=request.pk, user=other)


def test_a_full_reviewer_cannot_claim(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    full = reviewer(acme, "full@acme.example", capacity=0)
    with pytest.raises(ReviewerAtCapacity):
        approval_claim(approval_id=request.pk, user=full)


def test_an_admin_reassigns_and_the_slots_follow(acme: Tenant) -> None:
    first = reviewer(acme, "first@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    second = member_add(acme, "second@acme.example", "reviewer")
    moved = approval_reassign(approval_id=request.pk, user=User.objects.get(username=ALICE), to_user_id=second.pk)
    assert (moved.assignee, profile(first).open_count, profile(second).open_count) == (second, 0, 1)
    with pytest.raises(ApprovalForbidden):
        approval_reassign(approval_id=request.pk, user=first, to_user_id=first.pk)


def test_a_request_cannot_be_reassigned_to_a_viewer(acme: Tenant) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    viewer = member_add(acme, "viewer@acme.example", "viewer")
    with pytest.raises(ApprovalForbidden) as refused:
        approval_reassign(approval_id=request.pk, user=User.objects.get(username=ALICE), to_user_id=viewer.pk)
    assert refused.value.extra["rule"] == "role"


# ---------------------------------------------------------------- the last slot, concurrently
def _in_thread(tenant: Tenant, work: Callable[[], object], results: list[object]) -> threading.Thread:
    def run() -> None:
        try:
            connection.set_tenant(tenant)
            results.append(work())
        except Exception as exc:  # surfaced by the test's asserts
            results.append(exc)
        finally:
            connections.close_all()

    return threading.Thread(target=run)


@pytest.fixture
def last_slot(django_db_setup: None, committed: None) -> Iterator[tuple[Tenant, User, list[ApprovalRequest]]]:
    """Two unassigned requests and a reviewer with one free slot, all committed."""
    tenant = use_tenant("acme")
    agent = refund_agent(tenant, unique("race"))
    requests = [refund_opened_without_engine(agent), refund_opened_without_engine(agent)]
    slot = member_add(tenant, f"{unique('slot')}@acme.example", "reviewer")
    ReviewerProfile.objects.create(user=slot, capacity=1)
    yield tenant, slot, requests
    use_tenant("acme")
    ReviewerProfile.objects.filter(user=slot).delete()


def test_two_concurrent_assignments_never_share_a_reviewers_last_slot(
    last_slot: tuple[Tenant, User, list[ApprovalRequest]],
) -> None:
    tenant, slot, requests = last_slot
    start = threading.Barrier(2)
    results: list[object] = []

    def assign(request: ApprovalRequest) -> Callable[[], object]:
        def work() -> object:
            start.wait()
            return approval_assign(approval_id=request.pk)

        return work

    threads = [_in_thread(tenant, assign(r), results) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    connection.set_tenant(tenant)
    assert sorted(results, key=lambda r: r is None) == [slot, None]
    assert ApprovalRequest.objects.filter(pk__in=[r.pk for r in requests], assignee=slot).count() == 1
    assert profile(slot).open_count == 1


def test_an_assignment_skips_the_reviewer_another_transaction_is_filling(
    last_slot: tuple[Tenant, User, list[ApprovalRequest]],
) -> None:
    """While one transaction holds the reviewer's row (its assignment not yet committed), a
    second assignment does not wait for it and does not take the slot; after the commit, the
    slot is gone."""
    tenant, slot, (first, second) = last_slot
    holding, done = threading.Event(), threading.Event()
    results: list[object] = []

    def hold() -> object:
        with transaction.atomic():
            request = ApprovalRequest.objects.select_for_update(of=("self",)).select_related("task").get(pk=first.pk)
            taken = assign_next(approval=request, now=request.created_at)
            holding.set()
            done.wait(30)
        return taken

    holder = _in_thread(tenant, hold, results)
    holder.start()
    assert holding.wait(30)
    try:
        assert approval_assign(approval_id=second.pk) is None
    finally:
        done.set()
        holder.join(30)
    assert results == [slot]
    assert approval_assign(approval_id=second.pk) is None
    assert profile(slot).open_count == 1
