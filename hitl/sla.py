"""The default SLA and ladder of an approval request: minutes to decide by priority, when to
remind, how many times to escalate at a breach, and what happens at the last breach. Pure data;
hitl.ladder applies it; hitl.policies builds a request's own ladder from its policy version."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from hitl.models import ApprovalPriority


class TerminalAction(StrEnum):
    EXPIRE = "expire"  # the request expires; the task resumes as not approved
    AUTO_REJECT = "auto_reject"  # the request is rejected by the system; the task resumes
    # the request is approved by the system, for low-risk actions only (hitl.policies.LOW_RISK_MAX_LEVEL);
    # any other request expires instead
    AUTO_APPROVE = "auto_approve"


SLA_MINUTES: dict[int, int] = {
    ApprovalPriority.CRITICAL: 15,
    ApprovalPriority.HIGH: 60,
    ApprovalPriority.MEDIUM: 240,
    ApprovalPriority.LOW: 1440,
}


@dataclass(frozen=True)
class Ladder:
    """``reminder_share``: the share of the SLA after which the assignee is reminded, once per
    tier. ``escalations``: how many breaches escalate (raise the priority, move the request to
    the next tier, reassign it) before the next breach takes ``terminal``. ``tiers``: the role
    that decides at each escalation level (the last one repeats)."""

    reminder_share: float = 0.5
    escalations: int = 1
    terminal: TerminalAction = TerminalAction.EXPIRE
    sla_minutes: dict[int, int] = field(default_factory=lambda: dict(SLA_MINUTES))
    tiers: tuple[str, ...] = ("reviewer", "admin")
    # Whether escalation ``level`` (1-based) raises the priority; a level not listed does.
    raises: tuple[bool, ...] = ()

    def due(self, *, priority: int, start: datetime) -> datetime:
        return start + timedelta(minutes=self.sla_minutes.get(priority, SLA_MINUTES[ApprovalPriority.MEDIUM]))

    def remind(self, *, priority: int, start: datetime) -> datetime:
        return start + (self.due(priority=priority, start=start) - start) * self.reminder_share

    def raises_priority(self, *, level: int) -> bool:
        return self.raises[level - 1] if 0 < level <= len(self.raises) else True

    def tier_role(self, *, level: int, current: str) -> str:
        """The role deciding at escalation ``level``: never lower than the request's own."""
        role = self.tiers[min(level, len(self.tiers) - 1)]
        if current in self.tiers and self.tiers.index(current) > self.tiers.index(role):
            return current
        return role


DEFAULT_LADDER = Ladder()
