"""Approval requests (PRODUCT.md F-HITL), the reviewers who work them and each request's history."""

from __future__ import annotations

from typing import Any

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
    # A reviewer asked the requester a question (hitl.clarification): the task keeps waiting,
    # the SLA clock stops until the answer puts the request back in the reviewer's queue.
    CLARIFICATION = "clarification", "Awaiting clarification"


# Waiting for a decision: at most one such request per gated step.
OPEN_STATUSES: tuple[str, ...] = (
    ApprovalStatus.PENDING,
    ApprovalStatus.ASSIGNED,
    ApprovalStatus.ESCALATED,
    ApprovalStatus.CLARIFICATION,
)
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
    # Escalation policies (hitl.policies): the version that decided this request (None: the
    # built-in rules), how many distinct approvals it needs, and what shadow policies would
    # have required.
    policy_version = models.ForeignKey(
        "hitl.PolicyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    quorum = models.PositiveSmallIntegerField(default=1)
    shadow = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The queue: open requests by priority then deadline, and each reviewer's own.
            models.Index("status", models.F("priority").desc(), "due_at", name="approval_queue"),
            models.Index(fields=["assignee", "status"], name="approval_assignee_status"),
            # The API's list order (newest first).
            models.Index(fields=["-created_at"], name="approval_created"),
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
    VOTED = "voted", "Voted"
    ASKED = "asked", "Question asked"
    ANSWERED = "answered", "Question answered"
    SHADOW = "shadow", "Shadow policy"


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


class ApprovalVote(models.Model):
    """One reviewer's vote on a request that needs a quorum (every decision is one too): who,
    what, bound to which action hash. One vote per user and request: nobody counts twice."""

    approval = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="approval_votes"
    )
    verdict = models.CharField(max_length=10)
    action_hash = models.CharField(max_length=64)
    reason = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["approval", "id"]
        constraints = [models.UniqueConstraint(fields=["approval", "user"], name="approval_vote_once")]

    def __str__(self) -> str:
        return f"{self.verdict} by {self.user_id} on approval {self.approval_id}"


class PolicyGate(models.TextChoices):
    NONE = "none", "None: the step runs without approval"
    APPROVAL = "approval", "Approval"


class PolicyTerminal(models.TextChoices):
    EXPIRE = "expire", "Expire"
    AUTO_REJECT = "auto_reject", "Auto-reject"
    AUTO_APPROVE = "auto_approve", "Auto-approve (low risk only)"


class Policy(models.Model):
    """An escalation policy (F-HITL-12): its name, whether it applies, whether it only records
    (shadow) and its precedence (lower ``order`` first). What it says lives in its versions,
    never edited: ``current`` is the one in force. Changed through hitl.policies only."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    shadow = models.BooleanField(default=False, help_text="record what it would require without applying it")
    order = models.PositiveIntegerField(default=100, help_text="lower first: the first matching policy decides")
    current = models.ForeignKey("hitl.PolicyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    """One immutable version of a policy: conditions → gate, approvers, quorum, SLA, ladder,
    terminal action. The shape of each JSON field is hitl.policies' (validated there)."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    conditions = models.JSONField(default=dict, blank=True)
    gate = models.CharField(max_length=10, choices=PolicyGate.choices, default=PolicyGate.APPROVAL)
    approver_role = models.CharField(max_length=30, default="reviewer")
    quorum = models.PositiveSmallIntegerField(default=1)
    priority = models.PositiveSmallIntegerField(choices=ApprovalPriority.choices, null=True, blank=True)
    sla_minutes = models.JSONField(default=dict, blank=True)
    ladder = models.JSONField(default=dict, blank=True)
    terminal = models.CharField(max_length=20, choices=PolicyTerminal.choices, default=PolicyTerminal.EXPIRE)
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["policy", "-version"]
        constraints = [models.UniqueConstraint(fields=["policy", "version"], name="policy_version_unique")]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("policy versions are never edited: create a new version")
        super().save(*args, **kwargs)


class Clarification(models.Model):
    """A reviewer's question to the requester of an open request, and the answer
    (hitl.clarification). While it waits, the request's SLA clock is stopped: what was left of
    the deadline and of the reminder is kept here and restarts from the answer."""

    approval = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="clarifications")
    question = models.TextField(max_length=2000)
    asked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="questions_asked"
    )
    asked_at = models.DateTimeField()
    answer = models.TextField(max_length=2000, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="questions_answered"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    due_left = models.DurationField(null=True, blank=True, help_text="what was left of the SLA when asked")
    remind_left = models.DurationField(null=True, blank=True, help_text="what was left until the reminder")

    class Meta:
        ordering = ["approval", "id"]
        constraints = [
            # One open question per request at a time.
            models.UniqueConstraint(
                fields=["approval"], condition=models.Q(answered_at__isnull=True), name="clarification_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"question {self.pk} on approval {self.approval_id}"
