"""The live stack's two pure rules: which Origin may open a socket, and which events a user's
socket forwards."""

from __future__ import annotations

import pytest

from config.routing import origin_allowed
from governance.access import Capability
from governance.consumers import event_visible

VIEWER = frozenset({Capability.VIEW})
REVIEWER = frozenset({Capability.VIEW, Capability.REVIEW})


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "acme.localhost:8000", True),  # not a browser: a ticket is needed then
        ("http://acme.localhost:8000", "acme.localhost:8000", True),
        ("https://acme.example", "acme.example", True),
        ("https://acme.example:443", "acme.example", True),
        ("http://acme.localhost:8001", "acme.localhost:8000", False),
        ("http://beta.localhost:8000", "acme.localhost:8000", False),
        ("http://acme.localhost.evil.example:8000", "acme.localhost:8000", False),
        ("null", "acme.localhost:8000", False),
        ("file://", "acme.localhost:8000", False),
    ],
)
def test_only_the_pages_own_origin_may_open_a_socket(origin: str | None, host: str, allowed: bool) -> None:
    assert origin_allowed(origin=origin, host=host) is allowed


def test_an_unscoped_user_sees_every_agents_events() -> None:
    reach: dict[Capability, frozenset[int] | None] = {Capability.VIEW: None, Capability.REVIEW: None}
    assert event_visible({"type": "task.state", "agent_id": 7}, capabilities=VIEWER, reach=reach)


def test_a_scoped_user_sees_only_the_events_of_agents_in_reach() -> None:
    reach: dict[Capability, frozenset[int] | None] = {Capability.VIEW: frozenset({1, 2}), Capability.REVIEW: None}
    assert event_visible({"type": "task.step", "agent_id": 2}, capabilities=VIEWER, reach=reach)
    assert not event_visible({"type": "task.step", "agent_id": 3}, capabilities=VIEWER, reach=reach)
    assert not event_visible({"type": "task.step", "agent_id": None}, capabilities=VIEWER, reach=reach)


def test_a_reviewer_gets_approval_events_only_of_agents_they_review() -> None:
    reach: dict[Capability, frozenset[int] | None] = {
        Capability.VIEW: frozenset({1, 2}),
        Capability.REVIEW: frozenset({1}),
    }
    assert event_visible({"type": "approval.requested", "agent_id": 1}, capabilities=REVIEWER, reach=reach)
    assert not event_visible({"type": "approval.requested", "agent_id": 2}, capabilities=REVIEWER, reach=reach)
    assert event_visible({"type": "task.state", "agent_id": 2}, capabilities=REVIEWER, reach=reach)


def test_a_user_without_a_role_sees_nothing() -> None:
    reach: dict[Capability, frozenset[int] | None] = {Capability.VIEW: None, Capability.REVIEW: None}
    assert not event_visible({"type": "task.state", "agent_id": 1}, capabilities=frozenset(), reach=reach)


def test_a_reminder_or_breach_reaches_only_reviewers_of_its_agent() -> None:
    reach: dict[Capability, frozenset[int] | None] = {
        Capability.VIEW: frozenset({1, 2}),
        Capability.REVIEW: frozenset({1}),
    }
    for kind in ("approval.reminder", "approval.breached", "approval.assigned", "approval.decided"):
        assert event_visible({"type": kind, "agent_id": 1}, capabilities=REVIEWER, reach=reach)
        assert not event_visible({"type": kind, "agent_id": 2}, capabilities=REVIEWER, reach=reach)
        assert not event_visible({"type": kind, "agent_id": None}, capabilities=REVIEWER, reach=reach)


def test_an_agent_paused_reaches_only_users_who_see_that_agent() -> None:
    reach: dict[Capability, frozenset[int] | None] = {Capability.VIEW: frozenset({1}), Capability.REVIEW: None}
    assert event_visible({"type": "agent.paused", "agent_id": 1}, capabilities=VIEWER, reach=reach)
    assert not event_visible({"type": "agent.resumed", "agent_id": 2}, capabilities=VIEWER, reach=reach)


def test_the_tenants_usage_near_a_limit_reaches_every_viewer_and_an_agents_only_its_viewers() -> None:
    scoped: dict[Capability, frozenset[int] | None] = {Capability.VIEW: frozenset({1}), Capability.REVIEW: None}
    tenant_wide = {"type": "usage.near_limit", "agent_id": None, "limit": "runs_per_day", "used": 170, "max": 200}
    assert event_visible(tenant_wide, capabilities=VIEWER, reach=scoped)
    assert event_visible({**tenant_wide, "agent_id": 1}, capabilities=VIEWER, reach=scoped)
    assert not event_visible({**tenant_wide, "agent_id": 2}, capabilities=VIEWER, reach=scoped)
    assert not event_visible(tenant_wide, capabilities=frozenset(), reach=scoped)
    # Only the usage kinds are about the tenant as a whole: no other event without an agent.
    assert not event_visible({"type": "bench.tick", "agent_id": None}, capabilities=VIEWER, reach=scoped)
