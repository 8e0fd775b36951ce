from __future__ import annotations

from django.db import models


class ActorType(models.TextChoices):
    USER = "user", "User"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    """One link of a schema's hash chain. Written only by ``governance.services.audit_record``;
    PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the table (see migration 0001), and
    every column but ``body``, ``prev_hash`` and ``hash`` is generated from ``body``."""

    seq = models.BigIntegerField(primary_key=True)
    body = models.TextField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=200)
    verb = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=100)
    correlation_id = models.CharField(max_length=64)
    data = models.JSONField()

    class Meta:
        managed = False  # created by RunSQL: generated columns and the append-only trigger
        db_table = "governance_auditevent"
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.verb} {self.target_type}:{self.target_id}"
