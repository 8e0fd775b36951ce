"""Approval requests (PRODUCT.md F-HITL), the reviewers who work them and each request's history."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ASSIGNED = "assigned", "Assigned"
    ESCALATED = "escalated", "Escalated"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EDITED = "edited", "Approved as edited"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


# Waiting for a decision: at most one such request per gated step.
OPEN_STATUSES: tuple[str, ...] = (ApprovalStatus.PENDING, ApprovalStatus.ASSIGNED, ApprovalStatus.ESCALATED)
# Decided: the engine resumes the task with what these say (edited runs the edited action).
DECIDED_STATUSES: tuple[str, ...] = (
    ApprovalStatus.APPROVED,
    ApprovalStatus.EDITED,
    ApprovalStatus.REJECTED,
    ApprovalStatus.EXPIRED,
)


class ApprovalPriority(models.IntegerChoices):
    """Same scale as agents.TaskPriority, so a request inherits its task's priority."""

    LOW = 1, "low"
    MEDIUM = 2, "medium"
    HIGH = 3, "high"
    CRITICAL = 4, "critical"


class ApprovalRequest(models.Model):
    """A gated action, stored verbatim with the hash that binds a decision to it:
    action_hash = sha256(canonical {tool, arguments, schema}). An edit replaces the action and
    its hash and keeps the proposed ones in ``original_arguments`` / ``original_hash``."""

    task = models.ForeignKey("agents.Task", on_delete=models.CASCADE, related_name="approvals")
    step_index = models.PositiveIntegerField()
    tool = models.CharField(max_length=100)
    arguments = models.JSONField()
    action_hash = models.CharField(max_length=64)
    privilege_level = models.PositiveSmallIntegerField()
    reasoning = models.TextField(blank=True)
    required_role = models.CharField(max_length=30, default="reviewer")
    status = models.CharField(max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    priority = models.PositiveSmallIntegerField(choices=ApprovalPriority.choices, default=ApprovalPriority.MEDIUM)
    due_at = models.DateTimeField(null=True, blank=True, help_text="the SLA deadline")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="approval_assignments"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    # SLA ladder: each step is taken once, claimed under a row lock by a re-checked condition.
    remind_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)
    # What the reviewer sees (arguments, reasoning, the steps so far, cited sources with their
    # content hashes) and its hash, recorded in the audit chain when the request opens.
    evidence = models.JSONField(default=dict, blank=True)
    evidence_hash = models.CharField(max_length=64, blank=True)
    original_arguments = models.JSONField(null=True, blank=True)
    original_hash = models.CharField(max_length=64, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="approval_decisions"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The queue: open requests by priority then deadline, and each reviewer's own.
            models.Index("status", models.F("priority").desc(), "due_at", name="approval_queue"),
            models.Index(fields=["assignee", "status"], name="approval_assignee_status"),
        ]
        constraints = [
            # One open request per gated step; closed ones stay as history (a task escalated
            # at its gate and retried asks again for the same step).
            models.UniqueConstraint(
                fields=["task", "step_index"],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="approval_task_step_open_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"approval {self.pk}: {self.tool} for task {self.task_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class ApprovalEventKind(models.TextChoices):
    OPENED = "opened", "Opened"
    ASSIGNED = "assigned", "Assigned"
    CLAIMED = "claimed", "Claimed"
    RELEASED = "released", "Released"
    REASSIGNED = "reassigned", "Reassigned"
    REMINDED = "reminded", "Reminded"
    ESCALATED = "escalated", "Escalated"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EDITED = "edited", "Approved as edited"
    EXPIRED = "expired", "Expired"


class ApprovalEvent(models.Model):
    """The request's history: every assignment, ladder step and decision, in order. A decision's
    row is its feedback record (verdict, edit diff, reason, seconds to decide)."""

    approval = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="history")
    kind = models.CharField(max_length=20, choices=ApprovalEventKind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["approval", "id"]

    def __str__(self) -> str:
        return f"{self.kind} of approval {self.approval_id}"


class ReviewerProfile(models.Model):
    """A reviewer's availability and capacity (most open assignments at once). Which agents
    they may review is governance.access's answer (role, ``review_agent`` grants).
    ``open_count`` is kept by hitl.services in the same transaction as each assignment change;
    the assignment query locks this row, which is what keeps two requests off one last slot."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_profile")
    available = models.BooleanField(default=True)
    capacity = models.PositiveSmallIntegerField(default=10)
    open_count = models.PositiveIntegerField(default=0)
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"reviewer {self.user_id} ({self.open_count}/{self.capacity})"
