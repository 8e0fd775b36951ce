from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin

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

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM connection"

    def __str__(self) -> str:
        return self.name
