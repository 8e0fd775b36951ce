"""Agents, tools, tasks, steps and effects (PRODUCT.md F-AGT). Every row lives in a tenant's
schema. Workflows live in services and the engine, not here."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords


class PrivilegeLevel(models.IntegerChoices):
    READ_ONLY = 1, "Read only"
    EXECUTE_SAFE = 2, "Execute (safe)"
    EXECUTE_RISKY = 3, "Execute (risky): needs approval"
    ADMIN = 4, "Admin: needs approval by an admin"
    SUPER_ADMIN = 5, "Super admin: never automatic"


class AutomationLevel(models.TextChoices):
    MANUAL = "manual", "Manual: every side effect needs approval"
    SEMI_AUTO = "semi_auto", "Semi-automatic: risky actions need approval"
    FULL_AUTO = "full_auto", "Fully automatic up to the ceiling (admin-level tools still need approval)"


class AgentStatus(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    PAUSED = "paused", "Paused"


class Tool(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    privilege_level = models.PositiveSmallIntegerField(choices=PrivilegeLevel.choices)
    args_schema = models.JSONField(default=dict, help_text="JSON schema of the tool's arguments")
    has_side_effect = models.BooleanField(default=False)

    class Meta:
        ordering = ["privilege_level", "name"]

    def __str__(self) -> str:
        return f"{self.name} (L{self.privilege_level})"


class Agent(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    blueprint = models.CharField(max_length=50)
    config = models.JSONField(default=dict, blank=True)
    model_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"provider": "offline"} or {"connection": "<an LLM connection>", "model": "<one of its models>"}',
    )
    privilege_ceiling = models.PositiveSmallIntegerField(
        choices=PrivilegeLevel.choices,
        default=PrivilegeLevel.EXECUTE_SAFE,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    automation_level = models.CharField(
        max_length=20, choices=AutomationLevel.choices, default=AutomationLevel.SEMI_AUTO
    )
    status = models.CharField(max_length=20, choices=AgentStatus.choices, default=AgentStatus.ENABLED)
    tools = models.ManyToManyField(Tool, blank=True, related_name="agents")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["name"]
        # Object permissions (guardian) that limit a user to some agents; view_agent is
        # Django's own. What they mean is governance.access's.
        permissions = [
            ("manage_agent", "Can manage and run this agent"),
            ("review_agent", "Can review this agent's approval requests"),
        ]

    def __str__(self) -> str:
        return self.name


class AgentConfigVersion(models.Model):
    """Every change of an agent's configuration, with who, why and what changed."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    config = models.JSONField()
    model_settings = models.JSONField(default=dict)
    privilege_ceiling = models.PositiveSmallIntegerField()
    automation_level = models.CharField(max_length=20)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author_label = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    diff = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent", "-version"]
        constraints = [models.UniqueConstraint(fields=["agent", "version"], name="agent_version_unique")]

    def __str__(self) -> str:
        return f"{self.agent.name} v{self.version}"


class TaskState(models.TextChoices):
    QUEUED = "queued", "Queued"
    ASSIGNED = "assigned", "Assigned"
    ACKED = "acked", "Acknowledged"
    IN_PROGRESS = "in_progress", "In progress"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    RETRYING = "retrying", "Retrying"
    COMPLETED = "completed", "Completed"
    VERIFIED = "verified", "Verified"
    ESCALATED = "escalated", "Escalated"
    CANCELLED = "cancelled", "Cancelled"


class TaskPriority(models.IntegerChoices):
    LOW = 1, "Low"
    MEDIUM = 2, "Medium"
    HIGH = 3, "High"
    CRITICAL = 4, "Critical"


class Task(models.Model):
    # Indexes are chosen so that a step's lease update (attempt, ack_deadline, updated_at)
    # touches no indexed column: PostgreSQL can then update the row in place (a HOT update)
    # without writing an entry into every index. The agent is covered by task_agent_state.
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="tasks", db_index=False)
    input = models.JSONField()
    output = models.JSONField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=TaskState.choices, default=TaskState.QUEUED)
    priority = models.PositiveSmallIntegerField(choices=TaskPriority.choices, default=TaskPriority.MEDIUM)
    # The lease: every message carries the attempt it was sent for; a message whose attempt
    # is not the task's current one is stale and dropped.
    attempt = models.PositiveIntegerField(default=0)
    # Not indexed: the sweeper finds overdue tasks through the state index (only leased
    # tasks have a deadline).
    ack_deadline = models.DateTimeField(null=True, blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="the blueprint's working memory")
    agent_version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The client's Idempotency-Key of the submit that created the task (unique in the tenant's
    # schema while set); a retry with the same key returns this task instead of a new one.
    # NULL rather than "" for "no key": the unique constraint is partial on NOT NULL.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, editable=False)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["agent", "state"], name="task_agent_state"),
            models.Index(fields=["state"], name="task_state"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                name="task_idempotency_key_unique",
                condition=models.Q(idempotency_key__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"task {self.pk} ({self.agent_id}, {self.state})"


class Step(models.Model):
    # Covered by step_task_index_unique.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="steps", db_index=False)
    index = models.PositiveIntegerField()
    action = models.CharField(max_length=100)
    arguments = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    decision = models.CharField(max_length=20, default="allow")
    reasoning = models.TextField(blank=True)
    tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "index"]
        constraints = [models.UniqueConstraint(fields=["task", "index"], name="step_task_index_unique")]

    def __str__(self) -> str:
        return f"step {self.index} of task {self.task_id}: {self.action}"


class Effect(models.Model):
    """The effect ledger: a side-effecting tool call runs only if no row holds its key."""

    idempotency_key = models.CharField(max_length=200)
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="effects")
    step_index = models.PositiveIntegerField()
    tool = models.CharField(max_length=100)
    arguments_hash = models.CharField(max_length=64)
    result = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        # A constraint rather than unique=True: the same unique index, without the extra
        # pattern-matching index Django adds for unique text fields (keys are never searched
        # by prefix).
        constraints = [models.UniqueConstraint(fields=["idempotency_key"], name="effect_idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.tool} [{self.idempotency_key}]"


class OutboxMessage(models.Model):
    """What side-effecting tools send (replies, refunds, restarts), one row per effect, for a
    relay to deliver; counting rows counts effects."""

    effect = models.OneToOneField(Effect, on_delete=models.PROTECT, related_name="outbox")
    kind = models.CharField(max_length=50)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class TaskEvent(models.Model):
    """The event store: every state transition of every task."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=20)
    to_state = models.CharField(max_length=20)
    reason = models.CharField(max_length=500, blank=True)
    actor = models.CharField(max_length=200)
    attempt = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "id"]

    def __str__(self) -> str:
        return f"{self.task_id}: {self.from_state} → {self.to_state}"
