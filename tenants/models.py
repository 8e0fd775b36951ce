from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin
from simple_history.models import HistoricalRecords

from tenants.tiers import Tier, validate_overrides


class TenantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    # A fully migrated schema waiting in the warm pool; provisioning claims and renames it.
    SPARE = "spare", "Spare (warm pool)"


class Tenant(TenantMixin):
    # Annotated: django-tenants is untyped, so the type checker cannot infer fields of its models.
    name: models.CharField[str, str] = models.CharField(max_length=100)
    tier: models.CharField[str, str] = models.CharField(max_length=20, choices=Tier.choices, default=Tier.FREE)
    status: models.CharField[str, str] = models.CharField(
        max_length=20, choices=TenantStatus.choices, default=TenantStatus.ACTIVE, db_index=True
    )
    limit_overrides: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(default=timezone.now)
    # Name, tier, status and limit overrides as they were, with who changed them and why.
    history = HistoricalRecords(excluded_fields=["created_at"])

    # Schemas are created and dropped by tenants.services, never implicitly by save().
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    def clean(self) -> None:
        try:
            self.limit_overrides = validate_overrides(self.limit_overrides)
        except ValueError as exc:
            raise ValidationError({"limit_overrides": str(exc)}) from exc


class Domain(DomainMixin):
    pass


class LLMConnection(models.Model):
    """An LLM endpoint defined by an operator. Tenants' agents name a connection and one of its
    models; the URL, the key's source and the timeout stay the operator's (tenants.connections)."""

    name = models.SlugField(max_length=50, unique=True)
    base_url = models.URLField(max_length=500, help_text="an OpenAI-compatible API, e.g. https://api.openai.com/v1")
    api_key_env = models.CharField(max_length=100, help_text="the workers' environment variable that holds the key")
    # The key itself, encrypted (config.secrets), when the operator stored it rather than name a
    # variable; it wins over api_key_env. Write-only: never shown, audited or logged.
    api_key_encrypted = models.TextField(blank=True, editable=False, db_default="")
    allowed_models = ArrayField(
        models.CharField(max_length=100), help_text="the models agents may pick, comma-separated"
    )
    timeout_seconds = models.FloatField(
        default=20,
        validators=[MinValueValidator(0.1), MaxValueValidator(600)],
        help_text="per call; capped below the step lease",
    )
    available_to_all = models.BooleanField(default=False, help_text="every tenant may use it")
    tenants: models.ManyToManyField[Tenant, Any] = models.ManyToManyField(
        Tenant,
        blank=True,
        related_name="llm_connections",
        help_text="the tenants that may use it, when not available to all",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Never the key: its history must not hold the secret, even encrypted.
    history = HistoricalRecords(excluded_fields=["api_key_encrypted", "created_at", "updated_at"])

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM connection"

    def __str__(self) -> str:
        return self.name


# ------------------------------------------------------------------------- usage and prices
class ModelPrice(models.Model):
    """What a model costs, for the usage's estimated cost; operators edit it in their admin.
    A model without a row is priced at tenants.usage.DEFAULT_PRICE."""

    model = models.CharField(max_length=100, unique=True, help_text="the model's name, as agents name it")
    input_per_million = models.DecimalField(
        max_digits=12, decimal_places=4, validators=[MinValueValidator(0)], help_text="USD per million input tokens"
    )
    output_per_million = models.DecimalField(
        max_digits=12, decimal_places=4, validators=[MinValueValidator(0)], help_text="USD per million output tokens"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        verbose_name = "model price"

    def __str__(self) -> str:
        return self.model


class UsageDay(models.Model):
    """A tenant's usage on one day (UTC) with one model: what the steps statement and the
    services count as they commit (tenants.usage). One table in the public schema, so that
    the operators' view across tenants is one query."""

    tenant: models.ForeignKey[Tenant, Tenant] = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="usage_days", db_index=False
    )
    day = models.DateField()
    model = models.CharField(max_length=100)
    runs = models.BigIntegerField(default=0)
    steps = models.BigIntegerField(default=0)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    approvals = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "tenant", "model"]
        verbose_name = "usage"
        verbose_name_plural = "usage"
        constraints = [models.UniqueConstraint(fields=["tenant", "day", "model"], name="usage_day_unique")]
        indexes = [models.Index(fields=["day"], name="usage_day")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day} {self.model}"
