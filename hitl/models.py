"""Approval requests (PRODUCT.md F-HITL). The queue, SLA and assignment build on this record."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class ApprovalRequest(models.Model):
    """A gated action, stored verbatim with the hash that binds a decision to it:
    action_hash = sha256(canonical {tool, arguments, schema})."""

    task = models.ForeignKey("agents.Task", on_delete=models.CASCADE, related_name="approvals")
    step_index = models.PositiveIntegerField()
    tool = models.CharField(max_length=100)
    arguments = models.JSONField()
    action_hash = models.CharField(max_length=64)
    privilege_level = models.PositiveSmallIntegerField()
    reasoning = models.TextField(blank=True)
    required_role = models.CharField(max_length=30, default="reviewer")
    status = models.CharField(
        max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING, db_index=True
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="approval_decisions"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open request per gated step; closed ones stay as history (a task escalated
            # at its gate and retried asks again for the same step).
            models.UniqueConstraint(
                fields=["task", "step_index"],
                condition=models.Q(status="pending"),
                name="approval_task_step_pending_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"approval {self.pk}: {self.tool} for task {self.task_id} ({self.status})"
