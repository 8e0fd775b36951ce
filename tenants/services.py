"""Tenant provisioning and lifecycle. The only code that creates, renames or drops schemas.

Fast path: claim a spare, fully migrated schema from the warm pool and rename it
(``ALTER SCHEMA … RENAME`` is a catalog update, instant and transactional), then create the
domain, the first admin and the audit events in the same transaction. Fallback when the pool
is empty: migrate a new spare first, then claim that one.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass, field

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tenants.utils import schema_exists

from config.connection import connection
from config.dbroles import owner_connection
from governance.actors import Actor
from governance.services import audit_record
from tenants.exceptions import PoolEmpty, ProvisioningError, TenantStateError
from tenants.models import Domain, Tenant, TenantStatus
from tenants.selectors import spare_count, tenant_get
from tenants.tiers import Tier, validate_overrides

logger = logging.getLogger(__name__)

SCHEMA_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
RESERVED_SCHEMAS = {"public", "information_schema"}
RESERVED_PREFIXES = ("pg_", "spare_")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
SPARE_PREFIX = "spare_"
# Session-level advisory lock key: one pool refill at a time across processes.
POOL_REFILL_LOCK = 0x56475350  # "VGSP"


@dataclass(frozen=True)
class ProvisionRequest:
    name: str
    domain: str
    schema_name: str
    tier: str
    admin_email: str
    admin_password: str | None
    demo: bool


@dataclass
class ProvisionResult:
    tenant: Tenant
    admin_username: str
    invitation_url: str | None
    from_pool: bool
    demo_users: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


def _quote(schema: str) -> str:
    # Only names that passed SCHEMA_NAME_RE or came from our own spare names reach here.
    return '"' + schema.replace('"', '""') + '"'


def schema_name_for_domain(domain: str) -> str:
    label = domain.split(".")[0].replace("-", "_")
    return label if label[:1].isalpha() else f"t_{label}"


def provision_request_build(
    *,
    name: str,
    domain: str,
    tier: str,
    admin_email: str,
    admin_password: str | None = None,
    schema_name: str | None = None,
    demo: bool = False,
) -> ProvisionRequest:
    """Check every input before anything is written; raise ProvisioningError naming the
    first problem found."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ProvisioningError("name must be 1-100 characters", field="name")
    domain = (domain or "").strip().lower()
    if not DOMAIN_RE.match(domain):
        raise ProvisioningError(f"{domain!r} is not a valid host name", field="domain")
    if tier not in Tier.values:
        raise ProvisioningError(f"unknown tier {tier!r}; choose one of {', '.join(Tier.values)}", field="tier")
    try:
        validate_email(admin_email)
    except ValidationError:
        raise ProvisioningError(f"{admin_email!r} is not a valid email address", field="admin_email") from None
    schema = schema_name or schema_name_for_domain(domain)
    if not SCHEMA_NAME_RE.match(schema) or schema in RESERVED_SCHEMAS or schema.startswith(RESERVED_PREFIXES):
        raise ProvisioningError(
            f"{schema!r} is not a valid schema name (lowercase letter first, then lowercase letters, "
            f"digits or _, at most 48; not public, pg_* or spare_*)",
            field="schema_name",
        )
    if Domain.objects.filter(domain=domain).exists():
        raise ProvisioningError(f"domain {domain!r} is already in use", field="domain")
    if Tenant.objects.filter(schema_name=schema).exists() or schema_exists(schema):
        raise ProvisioningError(f"schema {schema!r} is already in use", field="schema_name")
    if admin_password is not None:
        try:
            # With the would-be user, so that a password resembling the email is refused too.
            validate_password(admin_password, user=get_user_model()(username=admin_email, email=admin_email))
        except ValidationError as exc:
            raise ProvisioningError(
                "admin password refused: " + " ".join(exc.messages), field="admin_password"
            ) from None
    return ProvisionRequest(
        name=name,
        domain=domain,
        schema_name=schema,
        tier=tier,
        admin_email=admin_email,
        admin_password=admin_password,
        demo=demo,
    )


@owner_connection()  # renames (or creates) a schema: see config/dbroles.py
def tenant_provision(*, request: ProvisionRequest, actor: Actor | None = None) -> ProvisionResult:
    """Create a tenant from a validated request: claim a spare schema (or migrate one when the
    pool is empty), then create its domain, roles' first admin and audit events.

    On any failure nothing of the tenant remains: no row, no domain, no schema (a claimed
    spare goes back to the pool untouched; a spare migrated for this call is dropped).
    """
    actor = actor or Actor.system("provisioning")
    started = time.perf_counter()
    try:
        result = _spare_claim(request=request, actor=actor, spare_pk=None)
    except PoolEmpty:
        logger.info("provisioning.pool_empty", extra={"schema": request.schema_name})
        migrate_started = time.perf_counter()
        spare = spare_create()
        migrate_ms = (time.perf_counter() - migrate_started) * 1000
        try:
            result = _spare_claim(request=request, actor=actor, spare_pk=spare.pk)
        except BaseException:
            _spare_drop(spare_pk=spare.pk)
            raise
        result.timings_ms["migrate"] = migrate_ms
    result.timings_ms["total"] = (time.perf_counter() - started) * 1000
    logger.info("tenant.provisioned", extra={"schema": request.schema_name, "from_pool": result.from_pool})
    return result


def _spare_claim(*, request: ProvisionRequest, actor: Actor, spare_pk: int | None) -> ProvisionResult:
    try:
        return _spare_claim_atomic(request=request, actor=actor, spare_pk=spare_pk)
    except IntegrityError as exc:
        # A concurrent provisioning took the same domain or schema after validation.
        raise ProvisioningError(f"domain or schema already in use ({exc.__class__.__name__})") from exc
    finally:
        connection.set_schema_to_public()


@transaction.atomic(durable=True)
def _spare_claim_atomic(*, request: ProvisionRequest, actor: Actor, spare_pk: int | None) -> ProvisionResult:
    t0 = time.perf_counter()
    connection.set_schema_to_public()
    spares = Tenant.objects.select_for_update(skip_locked=True).filter(status=TenantStatus.SPARE)
    spare = spares.filter(pk=spare_pk).first() if spare_pk else spares.order_by("created_at", "pk").first()
    if spare is None:
        raise PoolEmpty("no spare schema available")
    from_pool = spare_pk is None
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER SCHEMA {_quote(spare.schema_name)} RENAME TO {_quote(request.schema_name)}")
    tenant = spare
    tenant.schema_name = request.schema_name
    tenant.name = request.name
    tenant.tier = request.tier
    tenant.status = TenantStatus.ACTIVE
    tenant.created_at = timezone.now()
    tenant.save(update_fields=["schema_name", "name", "tier", "status", "created_at"])
    Domain.objects.create(domain=request.domain, tenant=tenant, is_primary=True)
    timings = {"claim": (time.perf_counter() - t0) * 1000}

    connection.set_tenant(tenant)
    t1 = time.perf_counter()
    admin = _user_create(email=request.admin_email, password=request.admin_password, role="admin")
    timings["admin_user"] = (time.perf_counter() - t1) * 1000
    demo_users = []
    if request.demo:
        from tenants.hooks import demo_content_create

        for role in ("reviewer", "viewer"):
            email = f"{role}@{request.domain}"
            demo_user = _user_create(email=email, password=request.admin_password, role=role)
            demo_users.append(
                email
                if request.admin_password
                else f"{email} (invitation: {_provisioning_invitation_url(request=request, user=demo_user)})"
            )
        demo_content_create()
    invitation = None if request.admin_password else _provisioning_invitation_url(request=request, user=admin)
    data = {
        "name": tenant.name,
        "tier": tenant.tier,
        "domain": request.domain,
        "admin": admin.get_username(),
        "from_pool": from_pool,
        "demo": request.demo,
    }
    audit_record(actor=actor, verb="tenant.provisioned", target_type="tenant", target_id=tenant.schema_name, data=data)
    connection.set_schema_to_public()
    audit_record(actor=actor, verb="tenant.provisioned", target_type="tenant", target_id=tenant.schema_name, data=data)
    timings["total"] = (time.perf_counter() - t0) * 1000
    return ProvisionResult(
        tenant=tenant,
        admin_username=admin.get_username(),
        invitation_url=invitation,
        from_pool=from_pool,
        demo_users=demo_users,
        timings_ms=timings,
    )


def _user_create(*, email: str, password: str | None, role: str) -> AbstractBaseUser:
    user_model = get_user_model()
    user = user_model(username=email, email=email, is_staff=True, is_active=True)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return user


def invitation_url(*, domain: str, user: AbstractBaseUser, scheme: str, port: int) -> str:
    """A one-time link where the user sets a password (the token dies once it is used).
    ``scheme`` and ``port`` are those of the request that asks for the link."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    netloc = domain if port == {"http": 80, "https": 443}.get(scheme) else f"{domain}:{port}"
    return f"{scheme}://{netloc}/invite/{uid}/{token}/"


def _provisioning_invitation_url(*, request: ProvisionRequest, user: AbstractBaseUser) -> str:
    # Provisioning runs from a command or a task, with no HTTP request to take them from.
    return invitation_url(
        domain=request.domain, user=user, scheme=settings.VIGIL_PUBLIC_SCHEME, port=settings.VIGIL_PUBLIC_PORT
    )


@owner_connection()
def spare_create(*, verbosity: int = 0) -> Tenant:
    """Create and fully migrate one spare schema, then register it in the pool. Slow (this is
    the migrations path); a failure drops the half-made schema."""
    schema = f"{SPARE_PREFIX}{secrets.token_hex(6)}"
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {_quote(schema)}")
    try:
        call_command("migrate_schemas", tenant=True, schema_name=schema, interactive=False, verbosity=verbosity)
        connection.set_schema_to_public()
        return Tenant.objects.create(schema_name=schema, name=schema, status=TenantStatus.SPARE, tier=Tier.FREE)
    except BaseException:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {_quote(schema)} CASCADE")
        raise


def _spare_drop(*, spare_pk: int) -> None:
    connection.set_schema_to_public()
    with transaction.atomic():
        spare = Tenant.objects.select_for_update().filter(pk=spare_pk, status=TenantStatus.SPARE).first()
        if spare is None:
            return
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {_quote(spare.schema_name)} CASCADE")
        spare.delete()


@owner_connection()
def spare_pool_fill(*, size: int | None = None, verbosity: int = 0) -> int:
    """Top the warm pool up to ``size`` spares (default VIGIL_SPARE_POOL_SIZE). Only one
    process fills at a time; a second caller returns 0 at once. Returns spares created."""
    target = settings.VIGIL_SPARE_POOL_SIZE if size is None else size
    if target < 0:
        raise ValueError("pool size must be >= 0")
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [POOL_REFILL_LOCK])
        if not cursor.fetchone()[0]:
            return 0
    created = 0
    try:
        while spare_count() < target:
            spare_create(verbosity=verbosity)
            created += 1
    finally:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [POOL_REFILL_LOCK])
    if created:
        logger.info("spare_pool.filled", extra={"spares_created": created, "pool_size": target})
    return created


def _status_change(*, schema_name: str, to: str, expect: str, verb: str, actor: Actor) -> Tenant:
    connection.set_schema_to_public()
    tenant = tenant_get(schema_name=schema_name)
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.status != expect:
        raise TenantStateError(
            f"tenant {schema_name!r} is {tenant.status}, not {expect}", schema=schema_name, status=tenant.status
        )
    tenant.status = to
    tenant.save(update_fields=["status"])
    data = {"from": expect, "to": to}
    connection.set_tenant(tenant)
    try:
        audit_record(actor=actor, verb=verb, target_type="tenant", target_id=schema_name, data=data)
    finally:
        connection.set_schema_to_public()
    audit_record(actor=actor, verb=verb, target_type="tenant", target_id=schema_name, data=data)
    return tenant


@transaction.atomic(durable=True)
def tenant_suspend(*, schema_name: str, actor: Actor) -> Tenant:
    """Suspend an active tenant: its domain answers 403 and its agents stop at the next step
    boundary. Raises TenantNotFound, or TenantStateError when it is not active."""
    return _status_change(
        schema_name=schema_name,
        to=TenantStatus.SUSPENDED,
        expect=TenantStatus.ACTIVE,
        verb="tenant.suspended",
        actor=actor,
    )


@transaction.atomic(durable=True)
def tenant_resume(*, schema_name: str, actor: Actor) -> Tenant:
    """Resume a suspended tenant. Raises TenantNotFound, or TenantStateError when it is not
    suspended."""
    tenant = _status_change(
        schema_name=schema_name,
        to=TenantStatus.ACTIVE,
        expect=TenantStatus.SUSPENDED,
        verb="tenant.resumed",
        actor=actor,
    )
    # Its agents' tasks stopped at a step boundary while suspended; the workers pick them up
    # again (by task name: tenants does not import the agents app).
    transaction.on_commit(lambda: current_app.send_task("agents.resend_held_tasks", kwargs={"schema": schema_name}))
    return tenant


@transaction.atomic  # not durable: the admin's change form already runs in a transaction
def tenant_update(*, schema_name: str, name: str, tier: str, limit_overrides: dict[str, int], actor: Actor) -> Tenant:
    """Change a tenant's name, tier or limit overrides. Raises ProvisioningError naming a bad
    value; audits what changed."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ProvisioningError("name must be 1-100 characters", field="name")
    if tier not in Tier.values:
        raise ProvisioningError(f"unknown tier {tier!r}; choose one of {', '.join(Tier.values)}", field="tier")
    try:
        clean = validate_overrides(limit_overrides)
    except ValueError as exc:
        raise ProvisioningError(str(exc), field="limit_overrides") from None
    connection.set_schema_to_public()
    tenant = Tenant.objects.select_for_update().get(pk=tenant_get(schema_name=schema_name).pk)
    changes = {
        key: {"from": getattr(tenant, key), "to": value}
        for key, value in (("name", name), ("tier", tier), ("limit_overrides", clean))
        if getattr(tenant, key) != value
    }
    if not changes:
        return tenant
    tenant.name, tenant.tier, tenant.limit_overrides = name, tier, clean
    tenant.save(update_fields=["name", "tier", "limit_overrides"])
    audit_record(actor=actor, verb="tenant.updated", target_type="tenant", target_id=schema_name, data=changes)
    return tenant


@owner_connection()
@transaction.atomic(durable=True)
def tenant_delete(*, schema_name: str, confirm: str, actor: Actor) -> None:
    """Drop a tenant's schema, domains and row. ``confirm`` must repeat the schema name.
    The tenant's own audit chain goes with its schema; its length and head hash are kept in
    the public chain's ``tenant.deleted`` event."""
    if confirm != schema_name:
        raise ProvisioningError(f"confirmation {confirm!r} does not match schema {schema_name!r}", field="confirm")
    connection.set_schema_to_public()
    tenant = Tenant.objects.select_for_update().get(pk=tenant_get(schema_name=schema_name).pk)
    connection.set_tenant(tenant)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), (SELECT hash FROM governance_auditevent ORDER BY seq DESC LIMIT 1) "
            "FROM governance_auditevent"
        )
        events, head = cursor.fetchone()
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA {_quote(schema_name)} CASCADE")
    domains = list(tenant.domains.values_list("domain", flat=True))
    tenant.delete()
    audit_record(
        actor=actor,
        verb="tenant.deleted",
        target_type="tenant",
        target_id=schema_name,
        data={"name": tenant.name, "domains": domains, "audit_events": events, "audit_head_hash": head},
    )
