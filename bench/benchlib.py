"""What the benchmarks share: percentiles, output, and a scratch database on the server of
DATABASE_URL, held under one advisory lock so two benchmarks never skew each other; for the
benchmarks that run Django in their own process, that database with a private Redis and one
provisioned tenant (``scratch_django``, ``tenant_provisioned``)."""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB_RE = re.compile(r"^vigil_bench[a-z0-9_]{0,40}$")
# Session advisory lock in the maintenance database: one benchmark per server at a time.
BENCH_LOCK = 0x56474242  # "VGBB"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def p50(values: list[float]) -> float:
    return statistics.median(values)


def say(text: str = "") -> None:
    print(text, flush=True)


def db_urls(db_name: str) -> tuple[str, str, str]:
    """(base URL of the tables' owner, URL of the bench database, URL of 'postgres'). A
    benchmark creates its own database, so it logs in as the owner (who may create one) and,
    like any setup with one login, also runs the application as that role."""
    from config.localservices import local_services

    base = (
        os.environ.get("DATABASE_OWNER_URL")
        or os.environ.get("DATABASE_URL")
        or local_services(ROOT).database_owner_url
    )
    parts = urllib.parse.urlsplit(base)
    bench = urllib.parse.urlunsplit(parts._replace(path="/" + db_name))
    maint = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    return base, bench, maint


def proc_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by a local process (a worker, a server
    backend); None when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def libpq_url(url: str) -> str:
    # dj-database-url accepts postgres:// and postgresql://; libpq too, but not e.g. "pgsql://".
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme in {"postgres", "postgresql", "pgsql"} else url


class BenchDatabase:
    """The scratch database, created and dropped through the maintenance database, whose
    connection also holds the one-benchmark-at-a-time lock."""

    def __init__(self, maint_url: str, name: str, wait_s: float) -> None:
        import psycopg

        self.name = name
        self.conn = psycopg.connect(libpq_url(maint_url), autocommit=True)
        deadline = time.monotonic() + wait_s
        told = False
        while not self._scalar("SELECT pg_try_advisory_lock(%s)", [BENCH_LOCK]):
            if time.monotonic() > deadline:
                self.conn.close()
                raise SystemExit(f"another benchmark held the server for {wait_s:.0f} s; try again later")
            if not told:
                say("another benchmark (bench/provision.py or bench/steps.py) is running on this server; waiting ...")
                told = True
            time.sleep(1)

    def _scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        """The first column of the one row ``sql`` returns."""
        row = self.conn.execute(sql, params).fetchone()
        assert row is not None, sql
        return row[0]

    def settings(self) -> dict[str, str]:
        names = (
            "server_version",
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "shared_buffers",
            "max_connections",
        )
        return {n: self._scalar(f"SHOW {n}") for n in names}

    def backends(self, exclude: int | None = None) -> list[int]:
        """PIDs of the client backends connected to the bench database, except ``exclude``."""
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'", [self.name]
        ).fetchall()
        return [r[0] for r in rows if r[0] != exclude]

    def create(self) -> None:
        self.drop()  # left over by a killed run
        self.conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self.conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def close(self) -> None:
        self.conn.close()


def scratch_options(parser: argparse.ArgumentParser, *, db_name: str) -> None:
    """The options of a benchmark that runs in a scratch database of its own."""
    parser.add_argument("--db-name", default=db_name, help="scratch database (must start with vigil_bench)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database at the end")
    parser.add_argument("--lock-wait", type=float, default=600, help="seconds to wait for another benchmark")


@contextmanager
def scratch_django(args: argparse.Namespace, *, prefix: str) -> Iterator[Path]:
    """Django set up in this process on the scratch database ``args.db_name`` (created here,
    dropped at the end unless ``args.keep_db``) and on a private redis-server (started and
    stopped here); yields a work directory. Holds the one-benchmark-at-a-time lock throughout."""
    from bench.steps import PrivateRedis  # steps imports this module

    if not BENCH_DB_RE.match(args.db_name):
        raise SystemExit("--db-name must match vigil_bench[a-z0-9_]*")
    _, bench_url, maint_url = db_urls(args.db_name)
    os.environ.update(
        {
            "DATABASE_URL": bench_url,
            "DATABASE_OWNER_URL": bench_url,
            "VIGIL_ENV": "development",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VIGIL_LOG_LEVEL": "WARNING",
            "VIGIL_SPARE_POOL_SIZE": "1",
            "VIGIL_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
    )
    db = BenchDatabase(maint_url, args.db_name, args.lock_wait)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    private_redis = None
    try:
        db.create()
        private_redis = PrivateRedis(workdir)
        os.environ.update({"REDIS_URL": private_redis.url, "CELERY_BROKER_URL": private_redis.url})
        import django

        django.setup()
        yield workdir
    finally:
        if private_redis is not None:
            private_redis.stop()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            db.drop()
        db.close()


def tenant_provisioned(*, name: str, domain: str, password: str) -> Any:
    """The shared schema migrated and an enterprise tenant provisioned on ``domain`` (its admin
    ``admin@<domain>`` with ``password``), as the operator would; the connection left on it."""
    from django.core.management import call_command

    from config.connection import connection
    from tenants.services import provision_request_build, spare_pool_fill, tenant_provision

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    spare_pool_fill(size=1)
    result = tenant_provision(
        request=provision_request_build(
            name=name, domain=domain, tier="enterprise", admin_email=f"admin@{domain}", admin_password=password
        )
    )
    connection.set_tenant(result.tenant)
    return result.tenant


def timed(runs: int, call: Callable[..., Any]) -> list[float]:
    """Wall milliseconds of ``runs`` calls."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples
