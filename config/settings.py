"""Vigil settings: one module, driven by environment variables.

DATABASE_URL and REDIS_URL default to the PostgreSQL and Redis that ``make services`` starts
for this checkout (see config/localservices.py); point them at any PostgreSQL >= 15 with
pgvector and any Redis to run elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.localservices import local_services

BASE_DIR = Path(__file__).resolve().parent.parent
_LOCAL = local_services(BASE_DIR)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Development mode (VIGIL_ENV=development: the Makefile and the test suite set it) allows the
# local defaults: a fixed secret key, any host, localhost links over http. Otherwise the
# settings below that would be unsafe in production must be given, or nothing starts.
VIGIL_ENV = os.environ.get("VIGIL_ENV", "production")
DEVELOPMENT = VIGIL_ENV == "development"
if VIGIL_ENV not in ("production", "development"):
    raise ImproperlyConfigured(f"VIGIL_ENV must be 'production' or 'development', not {VIGIL_ENV!r}")
DEBUG = env_bool("VIGIL_DEBUG", False)
SECRET_KEY = os.environ.get("VIGIL_SECRET_KEY") or ("insecure-development-key" if DEVELOPMENT else "")
VIGIL_PUBLIC_DOMAIN = os.environ.get("VIGIL_PUBLIC_DOMAIN", "localhost")
# The tenant middleware also answers 404 for a host with no Domain row; ALLOWED_HOSTS stops a
# forged Host before anything (a link, a redirect) is built from it. A leading dot matches
# subdomains; tenants on domains of their own must be listed too.
ALLOWED_HOSTS = env_list("VIGIL_ALLOWED_HOSTS", "*" if DEVELOPMENT else f"{VIGIL_PUBLIC_DOMAIN},.{VIGIL_PUBLIC_DOMAIN}")

# Port the demo's web server listens on.
VIGIL_HTTP_PORT = env_int("VIGIL_HTTP_PORT", 8000)
# Scheme and port of links printed where no request tells them (the provisioning command's
# invitations). In production TLS ends at a proxy in front of the web server.
VIGIL_PUBLIC_SCHEME = os.environ.get("VIGIL_PUBLIC_SCHEME", "http" if DEVELOPMENT else "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
if VIGIL_PUBLIC_SCHEME not in _DEFAULT_PORTS:
    raise ImproperlyConfigured(f"VIGIL_PUBLIC_SCHEME must be 'http' or 'https', not {VIGIL_PUBLIC_SCHEME!r}")
VIGIL_PUBLIC_PORT = env_int(
    "VIGIL_PUBLIC_PORT", VIGIL_HTTP_PORT if DEVELOPMENT else _DEFAULT_PORTS[VIGIL_PUBLIC_SCHEME]
)
_DEFAULT_PORT = (VIGIL_PUBLIC_SCHEME, VIGIL_PUBLIC_PORT) in _DEFAULT_PORTS.items()
_PUBLIC_PORT_SUFFIX = "" if _DEFAULT_PORT else f":{VIGIL_PUBLIC_PORT}"

_HTTPS = VIGIL_PUBLIC_SCHEME == "https"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("VIGIL_SECURE_COOKIES", _HTTPS)
# Health probes are answered before SecurityMiddleware, so a load balancer may call them over http.
SECURE_SSL_REDIRECT = env_bool("VIGIL_SSL_REDIRECT", _HTTPS and not DEVELOPMENT)
SECURE_HSTS_SECONDS = env_int("VIGIL_HSTS_SECONDS", 365 * 24 * 3600 if _HTTPS and not DEVELOPMENT else 0)
# Tenants live on subdomains of the public domain.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("VIGIL_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("VIGIL_HSTS_PRELOAD", False)
# Uvicorn already takes the scheme from X-Forwarded-Proto sent by a proxy on 127.0.0.1
# (FORWARDED_ALLOW_IPS); name the header here only when every request passes a proxy that
# overwrites it, since a client could otherwise claim https.
_PROXY_SSL_HEADER = os.environ.get("VIGIL_PROXY_SSL_HEADER", "").strip()
SECURE_PROXY_SSL_HEADER = (
    (f"HTTP_{_PROXY_SSL_HEADER.upper().replace('-', '_')}", "https") if _PROXY_SSL_HEADER else None
)
CSRF_TRUSTED_ORIGINS = env_list(
    "VIGIL_CSRF_TRUSTED_ORIGINS",
    f"{VIGIL_PUBLIC_SCHEME}://{VIGIL_PUBLIC_DOMAIN}{_PUBLIC_PORT_SUFFIX},"
    f"{VIGIL_PUBLIC_SCHEME}://*.{VIGIL_PUBLIC_DOMAIN}{_PUBLIC_PORT_SUFFIX}",
)
SILENCED_SYSTEM_CHECKS = [
    # security.W021 asks for SECURE_HSTS_PRELOAD. Preloading commits the public domain and
    # every subdomain to https in browsers for months and is hard to undo, so it stays the
    # operator's decision (VIGIL_HSTS_PRELOAD=true).
    "security.W021",
]
# Largest request body read into memory (API bodies, admin forms without their files); the
# API answers 413 above it (config/middleware.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("VIGIL_MAX_BODY_BYTES", 1024 * 1024)


# Fernet keys that encrypt stored credentials, comma-separated: the first encrypts, all decrypt
# (config/secrets.py; rotation with manage.py rotate_credentials_key). Never in the database.
# Development mode creates one under .run/ when unset.
VIGIL_CREDENTIALS_KEYS = env_list("VIGIL_CREDENTIALS_KEY", "")
# Signed checkpoints of the audit chains (governance/checkpoints.py): the Ed25519 private key
# (raw 32 bytes, base64; development mode creates VIGIL_CHECKPOINT_KEY_FILE when unset), the
# directory outside the database they are written to, and how often beat writes them.
VIGIL_CHECKPOINT_KEY = os.environ.get("VIGIL_CHECKPOINT_KEY", "")
VIGIL_CHECKPOINT_KEY_FILE = Path(os.environ.get("VIGIL_CHECKPOINT_KEY_FILE") or BASE_DIR / ".run" / "checkpoint.key")
VIGIL_CHECKPOINT_DIR = Path(os.environ.get("VIGIL_CHECKPOINT_DIR") or BASE_DIR / ".run" / "checkpoints")
VIGIL_CHECKPOINT_MINUTES = env_int("VIGIL_CHECKPOINT_MINUTES", 15)


def _unsafe_production_settings() -> list[str]:
    problems = []
    if DEBUG:
        problems.append("VIGIL_DEBUG is on: debug pages show settings and source code to anyone")
    if not SECRET_KEY:
        problems.append("VIGIL_SECRET_KEY is not set: give it a long random value and keep it secret")
    if "*" in ALLOWED_HOSTS:
        problems.append(
            "VIGIL_ALLOWED_HOSTS contains '*': list the public domain and the tenants' domains "
            "(a leading dot matches subdomains)"
        )
    if VIGIL_PUBLIC_DOMAIN == "localhost" or VIGIL_PUBLIC_DOMAIN.endswith(".localhost"):
        problems.append(f"VIGIL_PUBLIC_DOMAIN is {VIGIL_PUBLIC_DOMAIN!r}: set the operators' public host name")
    if not VIGIL_CREDENTIALS_KEYS:
        problems.append(
            "VIGIL_CREDENTIALS_KEY is not set: give it a Fernet key (it encrypts the stored credentials; "
            "see config/secrets.py)"
        )
    return problems


if not DEVELOPMENT and (_problems := _unsafe_production_settings()):
    raise ImproperlyConfigured(
        "refusing to start with unsafe production settings "
        "(on a development machine, set VIGIL_ENV=development):\n  - " + "\n  - ".join(_problems)
    )

# Spare, fully migrated schemas kept ready for instant provisioning.
VIGIL_SPARE_POOL_SIZE = env_int("VIGIL_SPARE_POOL_SIZE", 3)

SHARED_APPS = [
    # tenants first: its delete_tenant command must win over django-tenants' own.
    "tenants",
    "django_tenants",
    "governance",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "guardian",
    "simple_history",
    "rest_framework.authtoken",
    "governance",
    "agents",
    "hitl",
    "knowledge",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
TENANT_LIMIT_SET_CALLS = True
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)

MIDDLEWARE = [
    "config.health.HealthMiddleware",
    "config.middleware.ApiRequestMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenants.middleware.TenantMiddleware",
    "config.paths.OptionalSlashMiddleware",
    "governance.middleware.CorrelationIdMiddleware",
    "governance.throttles.TenantThrottleMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

DATABASE_URL = os.environ.get("DATABASE_URL", _LOCAL.database_url)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("VIGIL_CONN_MAX_AGE", 60))}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A plain agent step is a single statement, which commits when it completes. PostgreSQL checks
# every second that the client is still there while a statement runs, so the statement of a
# killed worker is rolled back rather than completed by its orphaned backend (PostgreSQL 14+).
_DB_OPTIONS = DATABASES["default"].setdefault("OPTIONS", {})
_DB_OPTIONS["options"] = f"{_DB_OPTIONS.get('options', '')} -c client_connection_check_interval=1000".strip()
# The hot paths prepare their statements on the server (config/db.py); off behind a pooler
# that cannot keep prepared statements. psycopg prepares nothing while its threshold is None
# (Django's default); a threshold no query reaches keeps every other statement unprepared.
VIGIL_DB_PREPARE = env_bool("VIGIL_DB_PREPARE", True)
if VIGIL_DB_PREPARE:
    _DB_OPTIONS.setdefault("prepare_threshold", 2**31 - 1)
DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get("VIGIL_TEST_DATABASE", "test_vigil")
# DATABASE_URL is the application role's login (web, workers): rows only. Migrations and schema
# changes log in as the owner of the tables (config/dbroles.py), the same database reached as
# DATABASE_OWNER_URL; an explicit DATABASE_URL without it means one role does both.
DATABASE_OWNER_URL = os.environ.get("DATABASE_OWNER_URL") or (
    DATABASE_URL if "DATABASE_URL" in os.environ else _LOCAL.database_owner_url
)
_OWNER_DB = dj_database_url.parse(DATABASE_OWNER_URL)
if _OWNER_DB["NAME"] != DATABASES["default"]["NAME"]:
    raise ImproperlyConfigured(
        f"DATABASE_OWNER_URL names database {_OWNER_DB['NAME']!r}, DATABASE_URL "
        f"{DATABASES['default']['NAME']!r}: both must name the same database"
    )
DATABASE_OWNER = {key: _OWNER_DB[key] for key in ("USER", "PASSWORD", "HOST", "PORT")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", _LOCAL.redis_url)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Cache keys carry the schema name so tenants never read each other's entries.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}
CHANNEL_LAYERS = {
    "default": {
        # Pub/sub: a group_send is one PUBLISH that each web process receives once and hands to
        # its own sockets, where the list-based layer pushes one message per socket through
        # Redis (bench/live.py measures both). At most once, like any layer: pages resync.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # redis-py 8 times idle receives out after 5 s unless socket_timeout is None.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]},
    }
}

AUTHENTICATION_BACKENDS = [
    "governance.lockout.LockoutBackend",  # first: a locked account or address gets no further
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
    # Single sign-on with the tenant's OpenID Connect provider (governance.sso); after ModelBackend,
    # which Django's force_login takes as the first backend with get_user.
    "governance.sso.TenantOidcBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row in every schema
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed sign-ins (admin login, API token endpoint) lock an account, or a client address, for
# VIGIL_LOCKOUT_SECONDS after this many failures within the window (governance.lockout).
VIGIL_LOCKOUT_FAILURES = env_int("VIGIL_LOCKOUT_FAILURES", 10)
VIGIL_LOCKOUT_IP_FAILURES = env_int("VIGIL_LOCKOUT_IP_FAILURES", 50)
VIGIL_LOCKOUT_WINDOW_SECONDS = env_int("VIGIL_LOCKOUT_WINDOW_SECONDS", 900)
VIGIL_LOCKOUT_SECONDS = env_int("VIGIL_LOCKOUT_SECONDS", 900)
# API tokens (governance.tokens): their default and longest lifetimes, in days.
VIGIL_API_TOKEN_DAYS = env_int("VIGIL_API_TOKEN_DAYS", 90)
VIGIL_API_TOKEN_MAX_DAYS = env_int("VIGIL_API_TOKEN_MAX_DAYS", 365)
# Invitations are one-time set-password links; they expire after this many seconds.
PASSWORD_RESET_TIMEOUT = env_int("VIGIL_INVITATION_TTL_SECONDS", 3 * 24 * 3600)
LOGIN_REDIRECT_URL = "/admin/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The admin's static files are served by WhiteNoise straight from the installed apps.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "governance.authentication.ApiTokenAuthentication",
        "governance.sso_authentication.OidcAccessTokenAuthentication",  # the identity provider's access tokens
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only (the knowledge upload also takes multipart): anything else is a 415.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # DRF's, with the count read in the page's own query.
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vigil API",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema endpoint is not part of the API it describes.
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components: read-only fields are not in them.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api_schema.postprocess",
    ],
    "ENUM_NAME_OVERRIDES": {
        "PrivilegeLevelEnum": "agents.models.PrivilegeLevel",
        "AutomationLevelEnum": "agents.models.AutomationLevel",
        "TaskPriorityEnum": "agents.models.TaskPriority",
        "DocumentStatusEnum": "knowledge.models.DocumentStatus",
        "ApprovalStatusEnum": "hitl.models.ApprovalStatus",
        "CredentialKindEnum": "agents.models.CredentialKind",
        "DeliveryStatusEnum": "agents.models.DeliveryStatus",
        "EventSourceKindEnum": "agents.models.EventSourceKind",
        "ApprovalEventKindEnum": "hitl.models.ApprovalEventKind",
        "ApproverRoleEnum": "hitl.policies.APPROVER_ROLES",
        "PriorityNameEnum": "hitl.api_policies.PRIORITY_NAMES",
    },
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Agent steps mostly wait (for their commit, for an LLM), so a worker runs more processes than
# there are cores; docs/benchmarks.md measures 2 and 4 on 2 cores.
CELERY_WORKER_CONCURRENCY = env_int("VIGIL_WORKER_CONCURRENCY", 2 * (os.cpu_count() or 1))
CELERY_TASK_DEFAULT_QUEUE = "steps"
CELERY_TASK_ROUTES = {
    "tenants.tasks.*": {"queue": "housekeeping"},
    "agents.sweep_ack_deadlines": {"queue": "housekeeping"},
    "agents.advance_task": {"queue": "steps"},
    "agents.resend_held_tasks": {"queue": "housekeeping"},
    # Effects delivered to the tenants' endpoints: waits on their answers, off the steps queue.
    "agents.relay_deliver": {"queue": "relay"},
    "agents.relay_sweep": {"queue": "relay"},
    "agents.relay_drain": {"queue": "relay"},
    "hitl.sla_sweep": {"queue": "housekeeping"},
    "governance.audit_checkpoint": {"queue": "housekeeping"},
    # Embedding a document takes seconds of CPU: kept off the agents' steps queue.
    "knowledge.embed_document": {"queue": "housekeeping"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Kombu's Redis transport with one client per channel (config/broker.py); only for redis:// URLs.
CELERY_BROKER_TRANSPORT = "config.broker:Transport" if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None
# Redis redelivers an unacked message after this long; a step never takes near it, and the
# database lease (Task.attempt) makes a redelivered duplicate harmless anyway.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("VIGIL_VISIBILITY_TIMEOUT", 3600)}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "sweep-ack-deadlines": {
        "task": "agents.sweep_ack_deadlines",
        "schedule": float(env_int("VIGIL_SWEEP_SECONDS", 5)),
    },
    "spare-pool-refill": {
        "task": "tenants.tasks.spare_pool_refill",
        "schedule": float(env_int("VIGIL_SPARE_POOL_REFILL_SECONDS", 30)),
    },
    "hitl-sla-sweep": {
        "task": "hitl.sla_sweep",
        "schedule": float(env_int("VIGIL_SLA_SWEEP_SECONDS", 5)),
    },
    "audit-checkpoint": {
        "task": "governance.audit_checkpoint",
        "schedule": 60.0 * VIGIL_CHECKPOINT_MINUTES,
    },
    "relay-sweep": {
        "task": "agents.relay_sweep",
        "schedule": float(env_int("VIGIL_RELAY_SWEEP_SECONDS", 10)),
    },
}
# Reviewer notifications (hitl.notify): the console in development and the demo, SMTP by settings.
EMAIL_BACKEND = os.environ.get("VIGIL_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("VIGIL_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("VIGIL_EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = os.environ.get("VIGIL_FROM_EMAIL", "vigil@localhost")
# Task execution: lease length, retries with exponential backoff and jitter.
TASK_ACK_TIMEOUT_SECONDS = env_int("TASK_ACK_TIMEOUT_SECONDS", 30)
TASK_MAX_RETRIES = env_int("TASK_MAX_RETRIES", 3)
TASK_RETRY_BASE_DELAY = float(os.environ.get("TASK_RETRY_BASE_DELAY", "1.0"))
TASK_RETRY_MAX_DELAY = float(os.environ.get("TASK_RETRY_MAX_DELAY", "60.0"))

# The outbox relay (agents/integrations/relay.py): attempts per message before it is a dead
# letter, and the backoff between them.
VIGIL_RELAY_MAX_ATTEMPTS = env_int("VIGIL_RELAY_MAX_ATTEMPTS", 8)
VIGIL_RELAY_BASE_DELAY = float(os.environ.get("VIGIL_RELAY_BASE_DELAY", "1.0"))
VIGIL_RELAY_MAX_DELAY = float(os.environ.get("VIGIL_RELAY_MAX_DELAY", "300.0"))
# Messages a relay sends in one transaction (the sweep's batches).
VIGIL_RELAY_BATCH = env_int("VIGIL_RELAY_BATCH", 50)
# Seconds a batch may spend sending before it stops taking messages (the rest wait for the
# next batch, their rows unlocked); each call has its endpoint's timeout as its deadline.
VIGIL_RELAY_BATCH_SECONDS = float(os.environ.get("VIGIL_RELAY_BATCH_SECONDS", "20"))
# Hosts, addresses or CIDRs the tenants' endpoints may reach besides public addresses
# (agents/integrations/egress.py): private, loopback and link-local ones are refused otherwise.
VIGIL_EGRESS_ALLOW = env_list("VIGIL_EGRESS_ALLOW", "")

# Knowledge base: chunking, embedding batches, upload and search limits.
KNOWLEDGE_CHUNK_CHARS = env_int("VIGIL_KNOWLEDGE_CHUNK_CHARS", 800)
KNOWLEDGE_CHUNK_OVERLAP = env_int("VIGIL_KNOWLEDGE_CHUNK_OVERLAP", 120)
KNOWLEDGE_EMBED_BATCH = env_int("VIGIL_KNOWLEDGE_EMBED_BATCH", 32)
KNOWLEDGE_MAX_DOCUMENT_BYTES = env_int("VIGIL_KNOWLEDGE_MAX_DOCUMENT_BYTES", 1024 * 1024)
KNOWLEDGE_MAX_TOP_K = env_int("VIGIL_KNOWLEDGE_MAX_TOP_K", 20)
# The collection the agents' knowledge.search tool reads when an agent names none.
KNOWLEDGE_DEFAULT_COLLECTION = os.environ.get("VIGIL_KNOWLEDGE_DEFAULT_COLLECTION", "help-center")

# Celery's Django fixup closes the connection around every task unless told to reuse it.
CELERY_DB_REUSE_MAX = env_int("VIGIL_CELERY_DB_REUSE_MAX", 1000)

LOG_LEVEL = os.environ.get("VIGIL_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
