from __future__ import annotations

from django.core.exceptions import ValidationError
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
    name = models.CharField(max_length=100)
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.FREE)
    status = models.CharField(max_length=20, choices=TenantStatus.choices, default=TenantStatus.ACTIVE,
                              db_index=True)
    limit_overrides = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

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
