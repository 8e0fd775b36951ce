"""Tiers and their limits, as data. A tenant's effective limits are its tier's, with its own
overrides on top (see tenants.selectors.tenant_limits)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from django.db import models


class Tier(models.TextChoices):
    FREE = "free", "Free"
    STARTER = "starter", "Starter"
    PROFESSIONAL = "professional", "Professional"
    ENTERPRISE = "enterprise", "Enterprise"


@dataclass(frozen=True)
class Limits:
    max_agents: int
    runs_per_day: int
    tokens_per_month: int
    requests_per_minute: int
    max_pending_approvals: int
    # Tasks of the tenant in flight at once (a message sent or a step running); more wait at
    # their first step boundary, in the order they were submitted (agents.limits).
    max_concurrent_tasks: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def with_overrides(self, overrides: dict[str, int]) -> Limits:
        return replace(self, **overrides)


LIMIT_NAMES = tuple(f.name for f in fields(Limits))

TIER_LIMITS: dict[str, Limits] = {
    Tier.FREE: Limits(
        max_agents=3,
        runs_per_day=200,
        tokens_per_month=200_000,
        requests_per_minute=60,
        max_pending_approvals=20,
        max_concurrent_tasks=5,
    ),
    Tier.STARTER: Limits(
        max_agents=10,
        runs_per_day=2_000,
        tokens_per_month=2_000_000,
        requests_per_minute=300,
        max_pending_approvals=100,
        max_concurrent_tasks=25,
    ),
    Tier.PROFESSIONAL: Limits(
        max_agents=50,
        runs_per_day=20_000,
        tokens_per_month=20_000_000,
        requests_per_minute=1_200,
        max_pending_approvals=1_000,
        max_concurrent_tasks=100,
    ),
    Tier.ENTERPRISE: Limits(
        max_agents=500,
        runs_per_day=500_000,
        tokens_per_month=500_000_000,
        requests_per_minute=6_000,
        max_pending_approvals=20_000,
        max_concurrent_tasks=500,
    ),
}


def validate_overrides(overrides: object) -> dict[str, int]:
    """Return overrides as a clean dict or raise ValueError naming the bad key or value."""
    if not isinstance(overrides, dict):
        raise ValueError("limit overrides must be a JSON object")
    clean: dict[str, int] = {}
    for key, value in overrides.items():
        if key not in LIMIT_NAMES:
            raise ValueError(f"unknown limit {key!r}; known limits: {', '.join(LIMIT_NAMES)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"limit {key!r} must be a non-negative integer, got {value!r}")
        clean[key] = value
    return clean
