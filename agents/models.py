"""Agents, tools, tasks, steps and effects (PRODUCT.md F-AGT). Every row lives in a tenant's
schema. Workflows live in services and the engine, not here."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from tenants.models import UsageDay


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
            # The API's list order (newest first): a page of 10k tasks without a sort.
            models.Index(fields=["-created_at"], name="task_created"),
            # The order queued tasks are admitted in (agents.limits): no column a lease moves.
            models.Index(
                fields=["-priority", "id"], name="task_queued_order", condition=models.Q(state=TaskState.QUEUED)
            ),
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


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying after a failed attempt"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Refused by the endpoint (4xx)"
    DEAD = "dead", "Dead letter: attempts spent"
    UNROUTED = "unrouted", "No endpoint for its kind"


class OutboxMessage(models.Model):
    """What side-effecting tools send (replies, refunds, restarts), one row per effect, for
    the relay (agents.integrations.relay) to deliver; counting rows counts effects. The step
    statement inserts the row with its effect, kind and payload: the delivery columns take
    their database defaults."""

    effect = models.OneToOneField(Effect, on_delete=models.PROTECT, related_name="outbox")
    kind = models.CharField(max_length=50)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, db_default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(db_default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, db_default="")
    endpoint = models.ForeignKey(
        "agents.Endpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The relay's sweep: messages still to deliver.
            models.Index(
                fields=["next_attempt_at"],
                name="outbox_to_deliver",
                condition=models.Q(status__in=["pending", "retrying"]),
            )
        ]

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


# ---------------------------------------------------------------------------- integrations
class CredentialKind(models.TextChoices):
    BEARER = "bearer", "Bearer token (Authorization: Bearer …)"
    BASIC = "basic", "Basic auth (user:password)"
    HEADER = "header", "A header of its own (name and value)"


class Credential(models.Model):
    """A secret a tenant's endpoint needs, encrypted at rest (config.secrets). Write-only: no
    API, admin page, audit event or log shows ``secret``; the relay decrypts it at call time."""

    name = models.SlugField(max_length=50, unique=True)
    kind = models.CharField(max_length=10, choices=CredentialKind.choices)
    header_name = models.CharField(max_length=100, blank=True, help_text="for kind 'header'")
    secret = models.TextField(editable=False)
    created_by = models.CharField(max_length=200, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Never the secret, even encrypted.
    history = HistoricalRecords(excluded_fields=["secret", "created_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Endpoint(models.Model):
    """Where a tenant's effects of the given kinds are delivered (and where a tool that answers
    from an endpoint asks). The URL must pass the operator's egress rules
    (agents.integrations.egress); each request is signed with ``signing_secret`` (encrypted)."""

    name = models.SlugField(max_length=50, unique=True)
    url = models.URLField(max_length=500)
    kinds = ArrayField(models.CharField(max_length=50), help_text="the effect kinds delivered here")
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.PROTECT, related_name="endpoints"
    )
    signing_secret = models.TextField(editable=False)
    enabled = models.BooleanField(default=True)
    timeout_seconds = models.FloatField(default=10, validators=[MinValueValidator(0.1), MaxValueValidator(60)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["signing_secret", "created_at", "updated_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# ------------------------------------------------------------ event intake (agents.intake)
class EventSourceKind(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Prometheus Alertmanager (webhook payload version 4)"
    GENERIC = "generic", "Generic JSON event"


class EventSource(models.Model):
    """A system that reports events to an ops agent (POST /api/v1/events/ingest/<name>), every
    request signed with the source's secret. The secret is stored encrypted (config.secrets)
    and never shown: it is set or rotated, not read back."""

    name = models.SlugField(max_length=50, unique=True)
    kind = models.CharField(max_length=20, choices=EventSourceKind.choices)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="event_sources")
    secret_token = models.TextField(editable=False, help_text="the signing secret, encrypted")
    enabled = models.BooleanField(default=True)
    secret_rotated_at = models.DateTimeField(auto_now_add=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["secret_token", "created_at", "updated_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IngestedEvent(models.Model):
    """An event a source reported, by the id the source gave it: a second delivery of the same
    id finds this row and its task instead of starting another."""

    # Covered by ingested_event_source_event_unique.
    source = models.ForeignKey(EventSource, on_delete=models.PROTECT, related_name="events", db_index=False)
    event_id = models.CharField(max_length=300)
    payload_hash = models.CharField(max_length=64)
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="ingested_events")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "event_id"], name="ingested_event_source_event_unique")
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.event_id}"


# ------------------------------------------------------------------------- usage (agents.usage)
class TenantUsage(UsageDay):
    """The tenant's own rows of the public usage table (tenants.UsageDay), as its admin lists
    them beside its limits (agents.usage)."""

    class Meta:
        proxy = True
        verbose_name = "usage"
        verbose_name_plural = "usage"
