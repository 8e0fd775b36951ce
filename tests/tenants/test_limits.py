"""Tier limits as data: a tenant's effective limits are its tier's with its overrides on top."""

from __future__ import annotations

import itertools

import pytest

from tenants.models import Tenant
from tenants.selectors import tenant_limits
from tenants.tiers import LIMIT_NAMES, TIER_LIMITS, Limits, Tier, validate_overrides


def test_every_tier_has_limits_and_they_grow_with_the_tier() -> None:
    assert set(TIER_LIMITS) == set(Tier.values)
    ladder = [TIER_LIMITS[tier].as_dict() for tier in (Tier.FREE, Tier.STARTER, Tier.PROFESSIONAL, Tier.ENTERPRISE)]
    for lower, higher in itertools.pairwise(ladder):
        assert all(lower[name] < higher[name] for name in LIMIT_NAMES)


def test_a_tenant_without_overrides_gets_its_tiers_limits(acme: Tenant) -> None:
    assert tenant_limits(tenant=acme) == TIER_LIMITS[Tier.STARTER]
    assert tenant_limits(tenant=acme).max_agents == 10


def test_overrides_replace_only_the_limits_they_name() -> None:
    tenant = Tenant(tier=Tier.PROFESSIONAL, limit_overrides={"max_agents": 75, "runs_per_day": 0})

    limits = tenant_limits(tenant=tenant)

    assert limits == Limits(
        max_agents=75,
        runs_per_day=0,
        tokens_per_month=20_000_000,
        requests_per_minute=1_200,
        max_pending_approvals=1_000,
        max_concurrent_tasks=100,
    )


def test_stored_overrides_are_applied(acme: Tenant) -> None:
    acme.limit_overrides = {"tokens_per_month": 9_000_000}
    acme.save(update_fields=["limit_overrides"])

    limits = tenant_limits(tenant=Tenant.objects.get(pk=acme.pk))

    assert limits.tokens_per_month == 9_000_000 and limits.max_agents == TIER_LIMITS[Tier.STARTER].max_agents


def test_valid_overrides_come_back_clean() -> None:
    assert validate_overrides({"max_agents": 0, "requests_per_minute": 10}) == {
        "max_agents": 0,
        "requests_per_minute": 10,
    }
    assert validate_overrides({}) == {}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_robots": 1}, "unknown limit 'max_robots'; known limits: max_agents, runs_per_day"),
        ({"max_agents": -1}, "limit 'max_agents' must be a non-negative integer, got -1"),
        ({"max_agents": True}, "limit 'max_agents' must be a non-negative integer, got True"),
        ({"max_agents": 1.5}, "limit 'max_agents' must be a non-negative integer, got 1.5"),
        ({"max_agents": "10"}, "limit 'max_agents' must be a non-negative integer, got '10'"),
        ([["max_agents", 1]], "limit overrides must be a JSON object"),
        (None, "limit overrides must be a JSON object"),
    ],
    ids=["unknown-key", "negative", "bool", "float", "string", "list", "null"],
)
def test_bad_overrides_are_refused_naming_the_problem(overrides: object, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        validate_overrides(overrides)

    assert message in str(refused.value)
