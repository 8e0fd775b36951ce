"""The test cast and the tenants they live in.

The test database is built once per session: public schema migrated, a warm pool of spare
schemas, and two committed tenants, acme and beta, each with an admin. Tests run inside a
transaction (pytest-django's ``db``) that is rolled back, DDL included, so a test may
provision, rename or drop schemas freely.

Cast: operator otto (public schema), acme's admin alice and reviewer rita, beta's admin bob.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
import pytest_django
from django.conf import settings as django_settings
from django.test import Client

from config.connection import connection
from tenants.models import Tenant
from tenants.services import provision_request_build, spare_pool_fill, tenant_provision

PASSWORD = "correct-horse-battery-9"

# The cast, one for every test module. Session users: acme's admin alice and reviewer rita,
# beta's admin bob, the operator otto (public schema). Created by the tests that need them:
# acme's viewer vera and agent manager max.
ALICE = "alice@acme.example"
RITA = "rita@acme.example"
BOB = "bob@beta.example"
OTTO = "otto@vigil.example"
VERA = "vera@acme.example"
MAX = "max@acme.example"
# What the cast sends to the agents.
REFUND_TICKET = {
    "text": "Please refund 25 EUR for order #AB1234, it arrived broken",
    "customer_email": "dana@example.com",
    "subject": "Broken parcel",
}
REFUND_ARGUMENTS = {"order_id": "AB1234", "amount": 25.0, "currency": "EUR"}
BILLING_TICKET = {"text": "My invoice shows a double charge, please fix it", "customer_email": "dana@example.com"}
CRASH_EVENT = {"service": "api", "kind": "crash", "message": "pod in crashloop"}
SESSION_SPARES = 4

# This process logs in as the owner role: it creates the test database, and its tests provision
# and drop schemas inside their transactions, on one connection. The worker and web processes it
# starts log in as the application role (``celery_env``), as they do in production.
cast("dict[str, Any]", django_settings.DATABASES["default"]).update(django_settings.DATABASE_OWNER)


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest, django_test_environment: None, django_db_blocker: pytest_django.DjangoDbBlocker
) -> Iterator[None]:
    """Create the test database for every session, whatever the tests' markers say:
    execution tests commit real rows for worker processes without pytest-django's db marker."""
    from django.contrib.auth.models import Group, User
    from django.test.utils import setup_databases, teardown_databases

    verbosity = request.config.option.verbose
    with django_db_blocker.unblock():
        # Django takes any collection of aliases (its own runner passes a set); the stubs say Mapping.
        db_cfg = setup_databases(verbosity=verbosity, interactive=False, aliases={"default"})  # type: ignore[arg-type]
        spare_pool_fill(size=SESSION_SPARES)
        for name, domain, admin in (
            ("Acme", "acme.localhost", "alice@acme.example"),
            ("Beta", "beta.localhost", "bob@beta.example"),
        ):
            request_ = provision_request_build(
                name=name, domain=domain, tier="starter", admin_email=admin, admin_password=PASSWORD
            )
            tenant_provision(request=request_)
        connection.set_tenant(Tenant.objects.get(schema_name="acme"))
        rita = User.objects.create_user("rita@acme.example", "rita@acme.example", PASSWORD, is_staff=True)
        rita.groups.add(Group.objects.get(name="reviewer"))
        connection.set_schema_to_public()
        User.objects.create_superuser("otto@vigil.example", "otto@vigil.example", PASSWORD)
        spare_pool_fill(size=SESSION_SPARES)
    yield
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        # Worker and web processes of this session are stopped by now, but PostgreSQL may
        # not have reaped their backends yet; the test database cannot be dropped until it has.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        teardown_databases(db_cfg, verbosity=verbosity)


@pytest.fixture(autouse=True)
def _public_schema_after_each_test() -> Iterator[None]:
    yield
    connection.set_schema_to_public()
    # A test's tenant changes are rolled back without a signal; the host lookup's cache is not.
    from tenants.selectors import tenant_cache_clear

    tenant_cache_clear()


@pytest.fixture(autouse=True)
def _login_failures_forgotten() -> Iterator[None]:
    """Failed-login counters, lockouts and API throttle counters live in Redis, outside the
    test's transaction: each test starts
    without them (only the test database's counters are touched)."""
    yield
    if connection.settings_dict["NAME"] == connection.settings_dict["TEST"]["NAME"]:
        from governance.lockout import lockout_forget
        from governance.receivers import login_failures_forget
        from governance.throttles import throttle_forget

        login_failures_forget()
        lockout_forget()
        throttle_forget()


@pytest.fixture
def acme(db: None) -> Tenant:
    return Tenant.objects.get(schema_name="acme")


@pytest.fixture
def beta(db: None) -> Tenant:
    return Tenant.objects.get(schema_name="beta")


@pytest.fixture
def in_acme(acme: Tenant) -> Iterator[Tenant]:
    connection.set_tenant(acme)
    yield acme
    connection.set_schema_to_public()


def host_client(host: str) -> Client:
    return Client(HTTP_HOST=host)


@pytest.fixture
def acme_client(db: None) -> Client:
    return host_client("acme.localhost")


@pytest.fixture
def beta_client(db: None) -> Client:
    return host_client("beta.localhost")


@pytest.fixture
def public_client(db: None) -> Client:
    return host_client("localhost")


# ------------------------------------------------------------------ real Celery workers
BASE_DIR = Path(__file__).resolve().parent.parent


def _session_redis_url() -> str:
    """A Redis database of its own for this test session (by test database name), so that
    concurrent sessions on one machine never consume each other's messages."""
    from django.conf import settings

    name = settings.DATABASES["default"]["NAME"]
    # Databases 1-12 are for test sessions; 0 is the demo's, 13-15 the benchmarks'. Concurrent
    # sessions that must not share one set VIGIL_TEST_REDIS_DB.
    index = int(os.environ.get("VIGIL_TEST_REDIS_DB") or 1 + int(hashlib.sha256(name.encode()).hexdigest(), 16) % 12)
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    return f"{base}/{index}"


def database_url(*, owner: bool = False) -> str:
    """The test database's URL with the application role's login (or the owner's)."""
    import dj_database_url

    login = dj_database_url.parse(django_settings.DATABASE_OWNER_URL if owner else django_settings.DATABASE_URL)
    return (
        f"postgres://{quote(login['USER'] or '')}:{quote(login['PASSWORD'] or '')}@{login['HOST']}:"
        f"{login['PORT']}/{django_settings.DATABASES['default']['NAME']}"
    )


@dataclass
class WorkerHandle:
    """A real `celery worker` process on the test database and the session's Redis db."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *, concurrency: int = 2, timeout: float = 60) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "steps,housekeeping,relay",
                "-c",
                str(concurrency),
                "-P",
                "prefork",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log_path.read_bytes()[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def children(self) -> list[int]:
        """PIDs of the prefork pool's child processes."""
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def celery_env(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Point this process's Celery producer and any worker we start at the session's broker.
    Short ack deadlines and retry delays keep execution tests fast."""
    import redis

    from config.celery import app

    broker = _session_redis_url()
    redis.Redis.from_url(broker).flushdb()
    app.conf["broker_url"] = broker  # what attribute assignment does; the stubs type the attribute read-only
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DATABASE_OWNER_URL": database_url(owner=True),
        "REDIS_URL": broker,
        "CELERY_BROKER_URL": broker,
        "TASK_ACK_TIMEOUT_SECONDS": os.environ.get("TEST_TASK_ACK_TIMEOUT_SECONDS", "4"),
        "TASK_RETRY_BASE_DELAY": "0.2",
        "TASK_RETRY_MAX_DELAY": "1.0",
        "VIGIL_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="session")
def celery_worker(celery_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerHandle]:
    """One worker shared by the session's execution tests (tests that kill workers start their own)."""
    handle = WorkerHandle(env=celery_env, log_path=tmp_path_factory.mktemp("worker") / "worker.log")
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture
def committed(django_db_blocker: pytest_django.DjangoDbBlocker) -> Iterator[None]:
    """For tests whose data a worker process must see: no wrapping transaction, every service
    call commits. Use unique names: committed rows stay until the session ends (the agents a
    test made are paused after it, so that they do not count against the tenant's max_agents)."""
    with django_db_blocker.unblock():
        newest = _newest_agents()
        yield
        _agents_pause_since(newest)
    connection.set_schema_to_public()


def _newest_agents() -> dict[str, int]:
    from agents.models import Agent

    newest = {}
    for schema in ("acme", "beta"):
        connection.set_tenant(Tenant.objects.get(schema_name=schema))
        newest[schema] = Agent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    connection.set_schema_to_public()
    return newest


def _agents_pause_since(newest: dict[str, int]) -> None:
    from agents.models import Agent
    from agents.services import agent_status_set

    for schema, pk in newest.items():
        connection.set_tenant(Tenant.objects.get(schema_name=schema))
        for agent_id in Agent.objects.filter(pk__gt=pk, status="enabled").values_list("pk", flat=True):
            agent_status_set(agent_id=agent_id, status="paused", user=None)


# The session's web server and browser, for every module that drives pages (tests/browser.py).
from tests.browser import browser, web_server  # noqa: E402

__all__ = ["browser", "web_server"]
