from __future__ import annotations

from django.db import models
from simple_history.models import HistoricalRecords


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


class ApiToken(models.Model):
    """A user's API token, kept in the tenant's schema. Only ``prefix`` (shown, used to find
    the row) and the SHA-256 ``digest`` of the whole token are stored; the secret is shown once,
    when the token is issued (governance.tokens)."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class SsoProvider(models.Model):
    """The tenant's OpenID Connect identity provider for single sign-on (governance.sso).
    The client secret is stored encrypted (config.secrets) and never shown again; the issuer
    is reached only within the operator's egress rules. ``tid`` is the value the ID and access
    tokens' ``tid`` claim must carry, so that a token minted for another organisation of the
    same provider never signs in here."""

    name = models.CharField(max_length=100, default="SSO", help_text="shown on the login button")
    issuer = models.URLField(max_length=500, help_text="the provider's issuer URL, as its tokens name it")
    client_id = models.CharField(max_length=200)
    client_secret_encrypted = models.TextField(editable=False, default="")
    scopes = models.CharField(max_length=300, default="openid email profile groups tid")
    tid = models.CharField("expected tid", max_length=200, help_text="the tid claim every token must carry")
    role_mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text='claim -> value -> role, e.g. {"groups": {"vigil-admins": "admin", "vigil-reviewers": "reviewer"}}',
    )
    link_verified_email = models.BooleanField(
        "link users by verified email",
        default=False,
        help_text="let a first sign-in take over the existing user with the same email, when the provider says "
        "the email is verified (email_verified); off: such a sign-in is refused",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Never the secret, not even encrypted: its changes are in the audit trail (secret_changed).
    history = HistoricalRecords(excluded_fields=["client_secret_encrypted", "created_at", "updated_at"])

    class Meta:
        ordering = ["pk"]
        verbose_name = "single sign-on provider"

    def __str__(self) -> str:
        return f"{self.name} ({self.issuer})"


class SsoIdentity(models.Model):
    """A person at an identity provider, named as OpenID Connect names them for good: the
    issuer and the ``sub`` claim (an email can change or be reassigned; the subject does not).
    A sign-in finds its user through this row (governance.sso), created at the first sign-in.
    Deleting the provider drops its identities: their users are then refused (or linked anew,
    when the settings allow it) like any existing user's email."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="sso_identities")
    provider = models.ForeignKey(SsoProvider, on_delete=models.CASCADE, related_name="identities")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    email = models.CharField(max_length=254, blank=True, help_text="the email of the last sign-in")
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class RoleAssignment(models.Model):
    """A role a user holds, mirroring their membership of the role's group (governance.access
    reads the groups) so that every grant and revocation is a historical record, with who and
    why (governance.history keeps it in step)."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=20)
    assigned_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(excluded_fields=["assigned_at"])

    class Meta:
        ordering = ["user_id", "role"]
        verbose_name = "role assignment"
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="role_assignment_unique")]

    def __str__(self) -> str:
        return f"{self.role} of user {self.user_id}"
