"""Benchmark: governed agent steps against bare Celery, on the same real worker.

    .venv/bin/python bench/steps.py [--quick] [--profile] [--dump-profiles DIR] [--keep-db]

Runs against the PostgreSQL of settings.DATABASE_URL (default: the one ``python -m
config.services start`` runs for this checkout) in a database of its own,
``vigil_bench_steps``, created at the start and dropped at the end. The broker is a private
``redis-server`` on a free port, started and stopped by the benchmark (a database index on
the shared Redis is not private: test sessions pick theirs by hash and flush it). The
``vigil`` database, the test databases and the shared Redis are never touched. One
benchmark per server at a time (a session advisory lock shared with bench/provision.py; a
second run waits for it).

Setup: shared-schema migrations, a warm pool of 1 spare, one provisioned tenant, agents
with the offline provider. One real worker, ``celery -A config worker -Q steps -c N -P
prefork --include bench.steps_tasks`` with the project's Celery settings (acks_late, prefetch
1, CELERY_DB_REUSE_MAX, N = CELERY_WORKER_CONCURRENCY unless --concurrency is given), serves
every run below.

What is measured (wall clock, first send to last completion):

* bare Celery no-op throughput: N no-op tasks sent from this process (the stack-notes
  baseline); also no-op *chains*, where each no-op sends the next message itself, the same
  message pattern as governed steps.
* governed step throughput: T tasks of blueprint ``bench_loop`` in parallel, each doing K
  steps; every step is one safe tool call (``send_reply``): lease check and row lock, effect
  ledger row, outbox message, Step row, hash-chained audit event, lease renewal, next message
  after commit. Steps/s = tool steps / (first send -> last task verified); the first and the
  finishing message of each task are inside that time.
* added latency per step: one chain at a time, the interval between consecutive steps of a
  task (Step.created_at, i.e. one full send -> pick-up -> run -> commit -> send cycle) minus
  the same interval of a no-op chain (time.time() at each link); p50 - p50 and p99 - p99.
* approve -> resume: tasks of blueprint ``bench_approval`` stop at awaiting_approval (a
  refund needs a reviewer); the time from ``approval_decide`` returning (committed, message
  sent) to the Step row of the approved action being created by the worker.
* CPU used by the worker (parent and pool children) and by its PostgreSQL backends during
  each throughput run, per task or step, and the share of the machine that went elsewhere
  (this is a shared 2-core machine: other work skews every number, so it is reported).
* anatomy of a step, in this process before the worker starts, message by message through
  ``agents.advance_task`` (TenantTask included, Celery's consumer not): SQL round trips
  (libpq trace: every ReadyForQuery is one), the statements, each statement's
  client-observed time, the price of one bare round trip, time per step, a cProfile
  breakdown, and a long task: the p50 of its steps at index 300-319 over that of steps
  1-20 (``long_task_step_ratio``, at most 1.2: a step's cost must not grow with the task).
* ``--profile``: afterwards, one more governed run on a worker whose pool children profile
  each task they run (BENCH_STEPS_PROFILE), with the breakdown per message.

The last line printed is one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import platform
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchlib import BENCH_DB_RE, BenchDatabase, db_urls, p50, pct, proc_cpu_s, say  # noqa: E402

TARGETS = {
    "step_ratio": 0.4,  # at least: governed steps/s / bare no-op tasks/s
    "added_p50_ms": 5.0,  # at most
    "added_p99_ms": 25.0,  # at most
    "approve_resume_p50_ms": 50.0,  # below
    "long_task_step_ratio": 1.2,  # at most: step p50 at index 300 / at index 1 (in process)
}
TENANT_DOMAIN = "steps.bench.localhost"
FINAL_STATES = ("verified", "escalated", "cancelled", "completed")


# --------------------------------------------------------------------------- helpers


_T0 = time.perf_counter()


def progress(text: str) -> None:
    say(f"[{time.perf_counter() - _T0:5.1f} s] {text}")


class Stopped(Exception):
    pass


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped(f"signal {signum}")


# --------------------------------------------------------------------------- database and redis


class PrivateRedis:
    """A redis-server of the benchmark's own on a free local port, no persistence.

    A database index on the shared Redis is not private enough: test sessions pick their
    index from a hash of their database name (1-15), start and flush it at any time, and
    their workers consume the ``steps`` queue of that index."""

    def __init__(self, workdir: Path) -> None:
        import socket

        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install -y redis-server); or pass --redis-url")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--logfile",
                str(workdir / "redis.log"),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        client.close()
        self.version = redis.Redis.from_url(self.url).info("server")["redis_version"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# --------------------------------------------------------------------------- the worker


class Worker:
    """One real ``celery worker`` process (prefork pool) on the bench database and Redis db."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int) -> None:
        self.env, self.log_path, self.concurrency = env, log_path, concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
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
                "steps",
                "-c",
                str(self.concurrency),
                "-P",
                "prefork",
                "--without-mingle",
                "--without-gossip",
                "--include",
                "bench.steps_tasks",
                "--loglevel",
                "WARNING",
                "-n",
                f"bench-steps-{uuid.uuid4().hex[:8]}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


class CpuMeter:
    """CPU seconds used by the worker (parent + pool children) and by the PostgreSQL backends
    of the bench database (except this process's own) between start() and stop()."""

    def __init__(self, worker: Worker, db: BenchDatabase) -> None:
        from config.connection import connection

        self.worker, self.db = worker, db
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.own = cursor.fetchone()[0]

    def _sample(self) -> tuple[dict[int, float], dict[int, float]]:
        assert self.worker.proc is not None
        wpids = [self.worker.proc.pid, *self.worker.children()]
        return (
            {p: proc_cpu_s(p) or 0.0 for p in wpids},
            {p: proc_cpu_s(p) or 0.0 for p in self.db.backends(exclude=self.own)},
        )

    @staticmethod
    def _machine() -> tuple[float, float]:
        """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError):
            return 0.0, 0.0
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        tick = os.sysconf("SC_CLK_TCK")
        return (sum(values[:8]) - idle) / tick, sum(values[:8]) / tick

    def start(self) -> None:
        self.w0, self.b0 = self._sample()
        self.m0 = self._machine()
        self.t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        w1, b1 = self._sample()
        m1 = self._machine()
        wall = time.perf_counter() - self.t0
        worker = sum(v - self.w0.get(p, 0.0) for p, v in w1.items())
        backends = sum(v - self.b0.get(p, 0.0) for p, v in b1.items())
        busy, total = m1[0] - self.m0[0], m1[1] - self.m0[1]
        return {
            "wall_s": wall,
            "worker_cpu_s": worker,
            "pg_cpu_s": backends,
            "machine_busy": busy / total if total else float("nan"),
        }


def wait_until(
    pred: Callable[[], bool], *, what: str, worker: Worker | None, timeout: float, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if worker is not None and not worker.alive():
            raise RuntimeError(f"the worker died while waiting for {what}:\n{worker.tail()}")
        if time.monotonic() > deadline:
            tail = worker.tail() if worker is not None else ""
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(interval)


# --------------------------------------------------------------------------- setup


def setup_tenant() -> dict[str, Any]:
    """Shared migrations, a warm pool of one spare, one tenant, the bench agents."""
    from django.core.management import call_command

    from agents.models import PrivilegeLevel
    from agents.services import agent_create
    from config.connection import connection
    from tenants.services import provision_request_build, spare_pool_fill, tenant_provision

    t0 = time.perf_counter()
    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    t1 = time.perf_counter()
    spare_pool_fill(size=1)
    t2 = time.perf_counter()
    request = provision_request_build(
        name="Bench steps", domain=TENANT_DOMAIN, tier="enterprise", admin_email=f"admin@{TENANT_DOMAIN}"
    )
    result = tenant_provision(request=request)
    assert result.from_pool
    connection.set_tenant(result.tenant)
    agent_create(name="bench-loop", blueprint="bench_loop", config={"steps": 20})
    agent_create(name="bench-probe", blueprint="bench_loop", config={"steps": 100_000})
    agent_create(name="bench-approval", blueprint="bench_approval", privilege_ceiling=PrivilegeLevel.EXECUTE_RISKY)
    return {
        "tenant": result.tenant,
        "admin": result.admin_username,
        "migrate_s": t1 - t0,
        "spare_s": t2 - t1,
        "provision_ms": result.timings_ms.get("total", 0.0),
    }


def loop_agent_steps(agent: str, steps: int) -> None:
    from agents.services import agent_get, agent_update

    current = agent_get(name=agent)
    if current.config.get("steps") != steps:
        agent_update(agent_id=current.pk, user=None, reason="bench", config={**current.config, "steps": steps})


# --------------------------------------------------------------------------- in-process anatomy


def _trace_count(path: str, prepared: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """(round trips, statements sent) from a libpq trace file. ``prepared`` names the SQL of
    statements prepared before the trace began (they are only bound and executed)."""
    trips, sent = 0, []
    for line in Path(path).read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        direction, kind, rest = parts[0], parts[2], "\t".join(parts[3:]).strip()
        if direction == "B" and kind == "ReadyForQuery":
            trips += 1
        elif direction == "F" and kind == "Query":  # "<sql>" (quotes inside are not escaped)
            sent.append(rest[1:-1] if rest.startswith('"') and rest.endswith('"') else rest)
        elif direction == "F" and kind == "Parse":  # "<name>" "<sql>" <n params> <oids>
            m = re.match(r'^"[^"]*" "(.*)" \d+', rest)
            sent.append(m.group(1) if m else rest)
        elif direction == "F" and kind == "Bind":  # "<portal>" "<statement name>" ...
            m = re.match(r'^"[^"]*" "([^"]+)"', rest)
            if m and prepared and m.group(1) in prepared:
                sent.append(prepared[m.group(1)])
    return trips, sent


def _short(sql: str) -> str:
    """A statement reduced to its kind and table, for counting."""
    sql = re.sub(r"\s+", " ", sql).strip()
    upper = sql.upper()
    for prefix in (
        "SET SEARCH_PATH",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE SAVEPOINT",
        "SELECT PG_ADVISORY_XACT_LOCK",
    ):
        if upper.startswith(prefix):
            return sql[: len(prefix)]
    if upper.startswith("WITH CLAIM AS"):
        return "WITH claim ... (the step statement)"
    if upper.startswith(("WITH MOVED AS", "WITH EVENT AS")):
        return "WITH moved ... (a transition)"
    if "FROM AGENTS_TASK T JOIN AGENTS_AGENT" in upper:
        return "SELECT agents_task (the snapshot)"
    table = re.search(r'(?i)\b(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql)
    name = table.group(1) if table else "?"
    verb = upper.split(" ", 1)[0]
    lock = " FOR UPDATE" if "FOR UPDATE" in upper else ""
    return f"{verb} {name}{lock}"


KEY_FUNCS: list[tuple[str, str, str]] = [
    # (label, file suffix, function name); "=" rows are derived: the parent minus its children
    ("TenantTask.__call__ (tenant lookup + run)", "agents/tasks.py", "__call__"),
    ("  engine.advance", "agents/engine.py", "advance"),
    ("    selectors.task_snapshot (task, agent, grants, tenant, steps)", "agents/selectors.py", "task_snapshot"),
    ("    blueprint + provider + context + plan", "=", "planning"),
    ("    engine._plan_step (tool run, arguments checked)", "agents/engine.py", "_plan_step"),
    ("    engine._step_commit (the step statement)", "agents/engine.py", "_step_commit"),
    ("    engine._apply (first/last message: a transaction)", "agents/engine.py", "_apply"),
    ("      engine._finish (finishing message only)", "agents/engine.py", "_finish"),
    ("    Celery apply_async (the next message)", "celery/app/task.py", "apply_async"),
    ("    rest of advance", "=", "rest"),
    ("  [all] Model.__init__ (rows -> model objects)", "django/db/models/base.py", "__init__"),
    ("  [all] SQL compilation (SQLCompiler*.as_sql)", "django/db/models/sql/compiler.py", "as_sql"),
    ("  [all] psycopg cursor.execute (round trips)", "psycopg/cursor.py", "execute"),
    ("  [all] json.loads (jsonb columns read)", "json/__init__.py", "loads"),
    ("  [all] JSON-schema validation (schema_errors)", "agents/schemas.py", "schema_errors"),
]
WORKER_FUNCS: list[tuple[str, str, str]] = [
    ("Celery fixup prerun (DB reuse count)", "celery/fixups/django.py", "on_task_prerun"),
    *KEY_FUNCS,
]
PLANNING = [
    ("agents/llm.py", "provider_for"),
    ("bench/steps_tasks.py", "plan"),
    ("agents/blueprints/base.py", "__init__"),
    ("agents/blueprints/base.py", "should_continue"),
]


def _cum(table: dict[Any, Any], suffix: str, func: str) -> tuple[float, int]:
    ct, calls = 0.0, 0
    for (file, _line, name), (cc, _nc, _tt, cum, _callers) in table.items():
        if name == func and file.replace("\\", "/").endswith(suffix):
            ct += cum
            calls += cc
    return ct, calls


def profile_breakdown(
    stats: pstats.Stats, messages: int, funcs: list[tuple[str, str, str]] = KEY_FUNCS
) -> list[tuple[str, float, float]]:
    """(label, cumulative ms per message, calls per message) for ``funcs``; recursion
    counted once."""
    table = stats.stats  # type: ignore[attr-defined]
    planning = sum(_cum(table, f, n)[0] for f, n in PLANNING)
    advance = _cum(table, "agents/engine.py", "advance")[0]
    parts = sum(
        _cum(table, suffix, name)[0]
        for suffix, name in (
            ("agents/selectors.py", "task_snapshot"),
            ("agents/engine.py", "_plan_step"),
            ("agents/engine.py", "_step_commit"),
            ("agents/engine.py", "_apply"),
            ("celery/app/task.py", "apply_async"),
        )
    )
    derived = {"planning": planning, "rest": advance - parts - planning}
    rows = []
    for label, suffix, func in funcs:
        if suffix == "=":
            rows.append((label, derived[func] * 1000 / messages, float("nan")))
            continue
        ct, calls = _cum(table, suffix, func)
        rows.append((label, ct * 1000 / messages, calls / messages))
    return rows


def top_self(stats: pstats.Stats, steps: int, n: int = 12) -> list[tuple[str, float]]:
    table = stats.stats  # type: ignore[attr-defined]
    ranked = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    out = []
    for (file, line, name), (_cc, _nc, tt, _ct, _callers) in ranked:
        where = file
        for marker in ("site-packages/", str(ROOT) + "/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        out.append((f"{name} ({where}:{line})", tt * 1000 / steps))
    return out


def anatomy(schema: str, tasks: int, steps: int, deep: int) -> dict[str, Any]:
    """Run governed tasks in this process, message by message, as a worker would but
    without Celery (no consumer runs: the next-step messages pile up in Redis and are flushed
    afterwards). Tasks of ``steps`` steps like the throughput run; SQL round trips by libpq
    trace, statements, time per step, cProfile, and the cost of a long task's context."""
    from psycopg import pq

    from agents.models import Task
    from agents.services import task_cancel, task_submit
    from agents.tasks import advance_task
    from config.connection import connection
    from tenants.models import Tenant

    tenant = Tenant.objects.get(schema_name=schema)
    loop_agent_steps("bench-loop", steps)

    def attempt(task_id: int) -> int:
        connection.set_tenant(tenant)
        return Task.objects.values_list("attempt", flat=True).get(pk=task_id)

    def traced(task_id: int) -> tuple[int, list[str]]:
        """One message with libpq tracing on: every ReadyForQuery is one round trip."""
        a = attempt(task_id)  # also opens the connection: the trace holds the step alone
        raw = connection.connection
        fd, path = tempfile.mkstemp(prefix="steps-trace-")
        try:
            raw.pgconn.trace(fd)
            raw.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            try:
                outcome = advance_task(schema=schema, task_id=task_id, attempt=a)
            finally:
                raw.pgconn.untrace()  # flushes the trace
            assert outcome == "stepped", outcome
            # psycopg's own record of the statements it prepared on this connection.
            names = getattr(getattr(raw, "_prepared", None), "_names", {})
            prepared = {name.decode(): key[0].decode() for key, name in names.items()}
            trips, sent = _trace_count(path, prepared)
            return trips, sent
        finally:
            os.close(fd)
            os.unlink(path)

    out: dict[str, Any] = {"first_ms": [], "step_ms": [], "finish_ms": []}
    profiler = cProfile.Profile()

    def run(*, profile: bool, trace: bool) -> None:
        connection.set_tenant(tenant)
        task_id = task_submit(agent_name="bench-loop", input={"probe": True}).pk
        index = 0
        while True:
            if trace and index in (0, 5):
                key = "first" if index == 0 else "steady"
                out[f"{key}_trips"], out[f"{key}_sent"] = traced(task_id)
                index += 1
                continue
            a = attempt(task_id)
            t0 = time.perf_counter()
            if profile:
                profiler.enable()
            outcome = advance_task(schema=schema, task_id=task_id, attempt=a)
            if profile:
                profiler.disable()
            took = (time.perf_counter() - t0) * 1000
            if outcome == "finished":
                if not profile:
                    out["finish_ms"].append(took)
                return
            assert outcome == "stepped", outcome
            if not profile:
                out["first_ms" if index == 0 else "step_ms"].append(took)
            index += 1

    # The price of one round trip on this machine: SELECT 1, raw psycopg and through Django.
    connection.set_tenant(tenant)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        raw = connection.connection
        rt_raw, rt_django = [], []
        for _ in range(300):
            t0 = time.perf_counter()
            raw.execute("SELECT 1").fetchone()
            rt_raw.append((time.perf_counter() - t0) * 1e6)
            t0 = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            rt_django.append((time.perf_counter() - t0) * 1e6)
    out["rt_raw_us"], out["rt_django_us"] = rt_raw, rt_django

    run(profile=False, trace=True)
    for _ in range(tasks):
        run(profile=False, trace=False)
    for _ in range(tasks):
        run(profile=True, trace=False)

    # Client-observed time of each statement sent through a Django cursor (BEGIN and COMMIT
    # are not), over one more task; tool steps after the first only.
    per_kind: dict[str, list[float]] = {}
    current: list[tuple[str, float]] = []

    def timer(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            current.append((_short(sql), (time.perf_counter() - t0) * 1e6))

    connection.set_tenant(tenant)
    task_id = task_submit(agent_name="bench-loop", input={"probe": True}).pk
    for index in range(steps + 1):
        a = attempt(task_id)
        current.clear()
        with connection.execute_wrapper(timer):
            outcome = advance_task(schema=schema, task_id=task_id, attempt=a)
        if outcome == "stepped" and index > 0:
            seen: Counter[str] = Counter()
            for kind, us in current:
                seen[kind] += 1
                per_kind.setdefault(kind if seen[kind] == 1 else f"{kind} (#{seen[kind]})", []).append(us)
    out["statement_us"] = per_kind
    out["profile"] = pstats.Stats(profiler)
    out["profiled_messages"] = tasks * (steps + 1)
    out["tasks"], out["steps"] = tasks, steps

    # A long task: a step's cost must not grow with the steps before it (the snapshot reads the
    # latest step of each action only). The messages writing steps 1-20 against those writing
    # steps deep to deep+19, of one task.
    connection.set_tenant(tenant)
    task_id = task_submit(agent_name="bench-probe", input={"probe": True}).pk
    early, late = [], []
    for index in range(deep + 20):
        a = attempt(task_id)
        t0 = time.perf_counter()
        outcome = advance_task(schema=schema, task_id=task_id, attempt=a)
        took = (time.perf_counter() - t0) * 1000
        assert outcome == "stepped", outcome
        if 1 <= index <= 20:
            early.append(took)
        elif index >= deep:
            late.append(took)
    out["late_index"] = deep
    out["early_step_ms"], out["late_step_ms"] = early, late
    connection.set_tenant(tenant)
    task_cancel(task_id=task_id, user=None, reason="bench probe done")
    connection.set_schema_to_public()
    return out


# --------------------------------------------------------------------------- runs on the worker


class Runs:
    def __init__(self, schema: str, worker: Worker, db: BenchDatabase) -> None:
        from bench.steps_tasks import broker
        from config.connection import connection
        from tenants.models import Tenant

        self.schema, self.worker, self.db = schema, worker, db
        self.redis = broker()
        self.tenant = Tenant.objects.get(schema_name=schema)
        connection.set_tenant(self.tenant)

    def _tenant(self) -> None:
        from config.connection import connection

        connection.set_tenant(self.tenant)

    # ---- bare Celery
    def noop_burst(self, n: int, timeout: float = 120) -> dict[str, Any]:
        from bench.steps_tasks import noop

        key = f"bench:noop:{uuid.uuid4().hex}"
        meter = CpuMeter(self.worker, self.db)
        meter.start()
        t0 = time.time()
        for _ in range(n):
            noop.apply_async(kwargs={"key": key, "total": n}, queue="steps")
        sent = time.time() - t0
        wait_until(
            lambda: self.redis.exists(f"{key}:done") > 0, what=f"{n} no-op tasks", worker=self.worker, timeout=timeout
        )
        cpu = meter.stop()
        done = self.redis.get(f"{key}:done")
        assert done is not None
        seconds = float(done) - t0
        self.redis.delete(key, f"{key}:done")
        return {"n": n, "seconds": seconds, "per_s": n / seconds, "send_s": sent, **cpu}

    def noop_chains(self, chains: int, links: int, timeout: float = 120) -> dict[str, Any]:
        from bench.steps_tasks import noop_chain

        key = f"bench:chain:{uuid.uuid4().hex}"
        total = chains * links
        meter = CpuMeter(self.worker, self.db)
        meter.start()
        t0 = time.time()
        for _ in range(chains):
            noop_chain.apply_async(kwargs={"key": key, "index": 0, "total": links, "grand": total}, queue="steps")
        wait_until(
            lambda: self.redis.exists(f"{key}:done") > 0,
            what=f"{chains} no-op chains",
            worker=self.worker,
            timeout=timeout,
        )
        cpu = meter.stop()
        done = self.redis.get(f"{key}:done")
        assert done is not None
        seconds = float(done) - t0
        self.redis.delete(key, f"{key}:done")
        return {"n": total, "seconds": seconds, "per_s": total / seconds, **cpu}

    def noop_serial(self, links: int, timeout: float = 120) -> list[float]:
        """Intervals (ms) between consecutive links of one no-op chain."""
        from bench.steps_tasks import noop_chain

        key = f"bench:serial:{uuid.uuid4().hex}"
        noop_chain.apply_async(kwargs={"key": key, "index": 0, "total": links, "grand": 0}, queue="steps")
        wait_until(lambda: self.redis.llen(key) >= links, what="the no-op chain", worker=self.worker, timeout=timeout)
        stamps = [float(v) for v in self.redis.lrange(key, 0, -1)]
        self.redis.delete(key)
        return [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]

    # ---- governed
    def _submit(self, agent: str, count: int) -> tuple[list[int], float]:
        """Submit ``count`` tasks in one transaction; their first messages go out at commit.
        Returns (task ids, time.time() just before the commit).

        task_submit is durable (never inside a caller's transaction), so the benchmark calls
        the function it decorates: every first message leaves at one commit, and the
        throughput window holds the steps only, not the submits."""
        from django.db import transaction

        from agents.services import task_submit

        submit = task_submit.__wrapped__  # type: ignore[attr-defined]
        self._tenant()
        with transaction.atomic():
            ids = [submit(agent_name=agent, input={"n": i}).pk for i in range(count)]
            t0 = time.time()
        return ids, t0

    def _wait_final(self, ids: list[int], timeout: float, interval: float = 0.05) -> None:
        from agents.models import Task

        def done() -> bool:
            self._tenant()
            return Task.objects.filter(pk__in=ids, state__in=FINAL_STATES).count() == len(ids)

        wait_until(done, what=f"{len(ids)} governed tasks", worker=self.worker, timeout=timeout, interval=interval)
        bad = list(
            Task.objects.filter(pk__in=ids).exclude(state="verified").values_list("pk", "state", "last_error")[:5]
        )
        if bad:
            raise RuntimeError(f"governed tasks did not finish cleanly: {bad}")

    def governed(self, tasks: int, steps: int, timeout: float = 300) -> dict[str, Any]:
        from django.db.models import Max

        from agents.models import Effect, Step, Task

        loop_agent_steps("bench-loop", steps)
        meter = CpuMeter(self.worker, self.db)
        ids, t0 = self._submit("bench-loop", tasks)
        meter.start()
        self._wait_final(ids, timeout)
        cpu = meter.stop()
        end = Task.objects.filter(pk__in=ids).aggregate(m=Max("finished_at"))["m"].timestamp()
        made = Step.objects.filter(task_id__in=ids).count()
        effects = Effect.objects.filter(task_id__in=ids).count()
        if made != tasks * steps or effects != made:
            raise RuntimeError(f"expected {tasks * steps} steps and effects, found {made} steps, {effects} effects")
        seconds = end - t0
        messages = tasks * (steps + 1)
        return {
            "tasks": tasks,
            "steps": made,
            "messages": messages,
            "seconds": seconds,
            "per_s": made / seconds,
            "messages_per_s": messages / seconds,
            **cpu,
        }

    def governed_serial(self, tasks: int, steps: int, timeout: float = 120) -> list[float]:
        """Intervals (ms) between consecutive steps of one task; tasks one after the other."""
        from agents.models import Step

        loop_agent_steps("bench-loop", steps)
        intervals: list[float] = []
        for _ in range(tasks):
            ids, _ = self._submit("bench-loop", 1)
            self._wait_final(ids, timeout, interval=0.01)
            stamps = [
                s.timestamp()
                for s in Step.objects.filter(task_id=ids[0]).order_by("index").values_list("created_at", flat=True)
            ]
            intervals += [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
        return intervals

    def approvals(self, count: int, admin: str, timeout: float = 60) -> dict[str, list[float]]:
        from django.contrib.auth import get_user_model

        from agents.models import Step, Task
        from hitl.models import ApprovalRequest, ApprovalStatus
        from hitl.services import approval_decide

        ids, _ = self._submit("bench-approval", count)

        def waiting() -> bool:
            self._tenant()
            return Task.objects.filter(pk__in=ids, state="awaiting_approval").count() == len(ids)

        wait_until(waiting, what="tasks to await approval", worker=self.worker, timeout=timeout)
        user = get_user_model().objects.get(username=admin)
        resume, decide, finish = [], [], []
        for tid in ids:
            self._tenant()
            request = ApprovalRequest.objects.get(task_id=tid, status=ApprovalStatus.PENDING)
            t_call = time.time()
            approval_decide(
                approval_id=request.pk, user=user, verdict="approve", note="bench", seen_hash=request.action_hash
            )
            t_ret = time.time()
            self._wait_final([tid], timeout, interval=0.005)
            step = Step.objects.get(task_id=tid, index=request.step_index)
            assert step.decision == "approved", step.decision
            task = Task.objects.get(pk=tid)
            resume.append((step.created_at.timestamp() - t_ret) * 1000)
            decide.append((t_ret - t_call) * 1000)
            assert task.finished_at is not None
            finish.append((task.finished_at.timestamp() - t_ret) * 1000)
        return {"resume_ms": resume, "decide_ms": decide, "finish_ms": finish}


# --------------------------------------------------------------------------- worker-side profile


def worker_profile(runs: Runs, profile_dir: Path, tasks: int, steps: int) -> dict[str, Any]:
    """One governed run on a worker whose pool children run under cProfile."""
    from bench.steps_tasks import noop

    result = runs.governed(tasks, steps)
    time.sleep(1.2)  # children dump at most once a second, after a task: nudge each one
    key = f"bench:nudge:{uuid.uuid4().hex}"
    for _ in range(8):
        noop.apply_async(kwargs={"key": key, "total": 8}, queue="steps")
        time.sleep(0.05)
    wait_until(lambda: runs.redis.exists(f"{key}:done") > 0, what="profile dumps", worker=runs.worker, timeout=30)
    time.sleep(0.3)
    files = sorted(profile_dir.glob("child-*.prof"))
    if not files:
        raise RuntimeError("the profiled worker wrote no profile")
    stats = pstats.Stats(str(files[0]))
    for extra in files[1:]:
        stats.add(str(extra))
    return {"run": result, "stats": stats, "files": len(files)}


# --------------------------------------------------------------------------- report


def fmt_dist(values: list[float]) -> str:
    return (
        f"p50 {p50(values):7.2f}  p90 {pct(values, 90):7.2f}  p99 {pct(values, 99):7.2f}  "
        f"max {max(values):7.2f}  (n={len(values)})"
    )


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["per_s"])
    return dict(ordered[(len(ordered) - 1) // 2], all_per_s=[r["per_s"] for r in runs])


def others_share(r: dict[str, Any]) -> float:
    """Share of the machine's CPU used by processes other than the worker and its backends
    (this process, Redis and whatever else runs on the machine) during a run."""
    ours = (r["worker_cpu_s"] + r["pg_cpu_s"]) / r["wall_s"] / (os.cpu_count() or 1)
    return max(0.0, r["machine_busy"] - ours)


def cpu_text(r: dict[str, Any], units: int, unit: str) -> str:
    ours = (r["worker_cpu_s"] + r["pg_cpu_s"]) / r["wall_s"] / (os.cpu_count() or 1)
    return (
        f"CPU per {unit}: worker {r['worker_cpu_s'] / units * 1e3:.2f} ms + PostgreSQL "
        f"{r['pg_cpu_s'] / units * 1e3:.2f} ms; {os.cpu_count()} cores busy {r['machine_busy'] * 100:.0f}%, "
        f"{ours * 100:.0f}% by those, {others_share(r) * 100:.0f}% by everything else"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; finishes in under a minute")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run governed steps on a cProfiled worker and print where the time goes",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="throughput runs of each kind, median kept (3; 1 quick)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="worker pool size (-c); default: the project's CELERY_WORKER_CONCURRENCY",
    )
    parser.add_argument("--db-name", default="vigil_bench_steps", help="scratch database (must start with vigil_bench)")
    parser.add_argument(
        "--redis-url", default=None, help="broker to use instead of a private redis-server (its database is flushed!)"
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database at the end")
    parser.add_argument(
        "--dump-profiles",
        metavar="DIR",
        default=None,
        help="write the cProfile data (in-process, and worker with --profile) to DIR for pstats",
    )
    parser.add_argument("--lock-wait", type=float, default=600, help="seconds to wait for another benchmark")
    args = parser.parse_args(argv)
    if not BENCH_DB_RE.match(args.db_name):
        parser.error("--db-name must match vigil_bench[a-z0-9_]*")

    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)
    noop_n = 1500 if quick else 5000
    tp_tasks, tp_steps = (24, 20) if quick else (120, 20)
    serial_links = 200 if quick else 800
    serial_tasks, serial_steps = (6, 20) if quick else (30, 20)
    approvals_n = 8 if quick else 25
    probe_tasks = 2 if quick else 10
    probe_deep = 300  # the long task (long_task_step_ratio): the same in quick runs

    _, bench_url, maint_url = db_urls(args.db_name)
    os.environ.update(
        {
            "DATABASE_URL": bench_url,
            "DATABASE_OWNER_URL": bench_url,
            "VIGIL_ENV": "development",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VIGIL_LOG_LEVEL": "WARNING",
            "VIGIL_SPARE_POOL_SIZE": "1",
        }
    )
    os.environ.pop("BENCH_STEPS_PROFILE", None)

    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started with SIGINT ignored
    started = time.perf_counter()
    load_before = os.getloadavg()
    db = BenchDatabase(maint_url, args.db_name, args.lock_wait)
    server = db.settings()
    logdir = Path(tempfile.mkdtemp(prefix="vigil-bench-steps-"))
    workers: list[Worker] = []
    res: dict[str, Any] = {}
    redis_client = None
    private_redis = None
    succeeded = False
    try:
        if args.redis_url:
            redis_url, redis_note = args.redis_url, "given with --redis-url"
        else:
            private_redis = PrivateRedis(logdir)
            redis_url, redis_note = private_redis.url, f"private redis-server {private_redis.version}"
        os.environ.update({"REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url})
        worker_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        say(f"== Vigil benchmark: governed steps vs bare Celery ({'quick' if quick else 'full'}) ==")
        say(
            f"database {args.db_name} on {urllib.parse.urlsplit(bench_url).netloc} (created for this run, "
            f"{'kept' if args.keep_db else 'dropped'} at the end); broker {redis_url} ({redis_note})"
        )
        db.create()
        import redis

        redis_client = redis.Redis.from_url(redis_url)
        redis_client.flushdb()

        import django

        django.setup()
        from django.conf import settings
        from django.db import connections

        import bench.steps_tasks  # noqa: F401  (registers the bench blueprints and tasks)
        from config.connection import connection

        args.concurrency = args.concurrency or settings.CELERY_WORKER_CONCURRENCY
        progress("setup: shared migrations, warm pool of 1, provisioning one tenant ...")
        setup = setup_tenant()
        schema = setup["tenant"].schema_name
        res["setup"] = setup
        say(
            f"  migrate {setup['migrate_s']:.1f} s, spare {setup['spare_s']:.1f} s, provision "
            f"{setup['provision_ms']:.0f} ms (tenant {schema})"
        )

        progress(
            f"anatomy of a governed step, in this process ({2 * probe_tasks + 1} tasks x {tp_steps} steps, "
            f"one of {probe_deep + 20}) ..."
        )
        res["anatomy"] = anatomy(schema, probe_tasks, tp_steps, probe_deep)
        if args.dump_profiles:
            Path(args.dump_profiles).mkdir(parents=True, exist_ok=True)
            res["anatomy"]["profile"].dump_stats(str(Path(args.dump_profiles) / "in-process.prof"))
        redis_client.flushdb()  # the probe's next-step messages: nobody should run them
        connections.close_all()

        worker = Worker(worker_env, logdir / "worker.log", args.concurrency)
        workers.append(worker)
        worker.start()
        runs = Runs(schema, worker, db)
        progress(
            f"worker: celery -A config worker -Q steps -c {args.concurrency} -P prefork (acks_late="
            f"{settings.CELERY_TASK_ACKS_LATE}, prefetch x{settings.CELERY_WORKER_PREFETCH_MULTIPLIER}, "
            f"CELERY_DB_REUSE_MAX={settings.CELERY_DB_REUSE_MAX}); warming up ..."
        )
        runs.noop_burst(200, timeout=90)  # readiness: the worker consumes
        runs.governed(4, 10)
        runs.noop_chains(4, 10)

        burst, chains, gov = [], [], []
        for rep in range(repeats):
            progress(
                f"throughput run {rep + 1}/{repeats}: {noop_n} no-ops; {tp_tasks} no-op chains x {tp_steps}; "
                f"{tp_tasks} governed tasks x {tp_steps} steps ..."
            )
            burst.append(runs.noop_burst(noop_n))
            chains.append(runs.noop_chains(tp_tasks, tp_steps))
            gov.append(runs.governed(tp_tasks, tp_steps))
        res["burst"], res["chains"], res["gov"] = median_run(burst), median_run(chains), median_run(gov)

        progress(
            f"latency: one no-op chain of {serial_links}, {serial_tasks} governed tasks x {serial_steps} steps "
            f"one at a time ..."
        )
        res["noop_serial"] = runs.noop_serial(serial_links)
        res["gov_serial"] = runs.governed_serial(serial_tasks, serial_steps)
        progress(f"approve -> resume: {approvals_n} tasks ...")
        res["approvals"] = runs.approvals(approvals_n, setup["admin"])
        worker.stop()

        if args.profile:
            profile_dir = logdir / "profile"
            profile_dir.mkdir()
            progress("profiled worker: one more governed run under cProfile ...")
            pworker = Worker(
                {**worker_env, "BENCH_STEPS_PROFILE": str(profile_dir)}, logdir / "worker-profile.log", args.concurrency
            )
            workers.append(pworker)
            pworker.start()
            prof_runs = Runs(schema, pworker, db)
            prof_runs.noop_burst(50, timeout=90)
            res["wprofile"] = worker_profile(prof_runs, profile_dir, tp_tasks, tp_steps)
            if args.dump_profiles:
                res["wprofile"]["stats"].dump_stats(str(Path(args.dump_profiles) / "worker.prof"))
            pworker.stop()
        connection.set_schema_to_public()
        connections.close_all()
        succeeded = True
    finally:
        for w in workers:
            w.stop()
        try:
            if "django" in sys.modules:
                from django.db import connections

                connections.close_all()
            if redis_client is not None:
                redis_client.flushdb()
                redis_client.close()
            if private_redis is not None:
                private_redis.stop()
            if not args.keep_db:
                db.drop()
        finally:
            db.close()
            if succeeded:
                shutil.rmtree(logdir, ignore_errors=True)
            else:
                say(f"logs kept in {logdir}")
    total_s = time.perf_counter() - started
    load_after = os.getloadavg()
    progress("done: workers stopped" + ("" if args.keep_db else ", scratch database dropped"))

    # ------------------------------------------------------------------ report
    burst, chains, gov, ana = res["burst"], res["chains"], res["gov"], res["anatomy"]
    ratio = gov["per_s"] / burst["per_s"]
    noop_lat, gov_lat = res["noop_serial"], res["gov_serial"]
    added_p50 = p50(gov_lat) - p50(noop_lat)
    added_p99 = pct(gov_lat, 99) - pct(noop_lat, 99)
    appr = res["approvals"]
    resume_p50 = p50(appr["resume_ms"])
    long_ratio = p50(ana["late_step_ms"]) / p50(ana["early_step_ms"])
    fsync_off = server["fsync"] != "on" or server["synchronous_commit"] == "off"

    say()
    say(
        f"PostgreSQL {server['server_version']}: SHOW fsync = {server['fsync']}; synchronous_commit="
        f"{server['synchronous_commit']} full_page_writes={server['full_page_writes']} "
        f"shared_buffers={server['shared_buffers']}"
    )
    if fsync_off:
        say(
            "  NOTE: durability is off on this server (`config.services start --fast`): commits do not wait for "
            "the disk, so the governed numbers are optimistic."
        )
    say(
        f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min; other work on the machine skews the numbers)"
    )
    busy_elsewhere = max(others_share(gov), others_share(chains))
    if busy_elsewhere > 0.25:
        say(
            f"  WARNING: {busy_elsewhere * 100:.0f}% of the machine's CPU went to other processes during the governed "
            f"or chained runs (tests?): every number below is pessimistic; rerun on a quiet machine."
        )
    say()

    def runs_txt(r: dict[str, Any]) -> str:
        return "" if len(r["all_per_s"]) == 1 else "  runs " + ", ".join(f"{v:.0f}" for v in r["all_per_s"])

    say(f"Throughput (one worker, -c {args.concurrency} prefork, same settings for every run; median of {repeats})")
    say(
        f"  bare Celery no-op, sent from here     {burst['n']:5d} tasks         {burst['seconds']:6.2f} s "
        f"{burst['per_s']:7.0f} tasks/s{runs_txt(burst)}"
    )
    say(f"      (sending took {burst['send_s']:.2f} s; {cpu_text(burst, burst['n'], 'task')})")
    say(
        f"  no-op chains (next sent by the task)  {tp_tasks} x {tp_steps} = {chains['n']:5d}   "
        f"{chains['seconds']:6.2f} s {chains['per_s']:7.0f} tasks/s{runs_txt(chains)}"
    )
    say(f"      ({cpu_text(chains, chains['n'], 'task')})")
    say(
        f"  governed steps (send_reply + effect + outbox + step + audit)  {tp_tasks} x {tp_steps} = "
        f"{gov['steps']} steps, {gov['messages']} messages   {gov['seconds']:6.2f} s {gov['per_s']:7.0f} steps/s "
        f"({gov['messages_per_s']:.0f} messages/s){runs_txt(gov)}"
    )
    say(f"      ({cpu_text(gov, gov['steps'], 'step')})")
    say(f"  ratio governed / bare no-op: {ratio:.2f}   (governed / no-op chains: {gov['per_s'] / chains['per_s']:.2f})")
    cores = os.cpu_count() or 1

    def ceiling(r: dict[str, Any], units: int) -> float:
        return cores / ((r["worker_cpu_s"] + r["pg_cpu_s"]) / units)

    say(
        f"  CPU-bound ceilings on {cores} cores (cores / CPU per unit of worker + PostgreSQL): no-op "
        f"{ceiling(burst, burst['n']):.0f}/s (its sender runs in this process, not counted), no-op chains "
        f"{ceiling(chains, chains['n']):.0f}/s, governed {ceiling(gov, gov['steps']):.0f} steps/s"
    )
    say()
    say("Latency per step, one chain at a time (interval between consecutive steps = one full cycle), ms")
    say(f"  no-op chain      {fmt_dist(noop_lat)}")
    say(f"  governed step    {fmt_dist(gov_lat)}")
    say(f"  added            p50 {added_p50:7.2f}  p99 {added_p99:7.2f}   (governed minus no-op, per percentile)")
    say()
    say(
        "Approve -> resume, ms (approval_decide returned: committed, message sent -> Step of the approved action "
        "created by the worker)"
    )
    say(f"  resume           {fmt_dist(appr['resume_ms'])}")
    say(f"  approval_decide  {fmt_dist(appr['decide_ms'])}  (the call itself)")
    say(f"  -> task verified {fmt_dist(appr['finish_ms'])}  (resumed step + finishing step)")
    say()
    say(
        f"Anatomy of a governed step, in this process without Celery ({ana['tasks']} tasks x {ana['steps']} "
        f"steps, message by message)"
    )
    kinds = Counter(_short(sql) for sql in ana["steady_sent"])
    say(
        f"  SQL round trips per step: {ana['steady_trips']} (libpq trace, step index 5; the first step of a task, "
        f"with the ASSIGNED->ACKED->IN_PROGRESS transitions: {ana['first_trips']})"
    )
    for text, count in kinds.items():
        say(f"    {count} x {text}")
    say(
        "  client-observed time per statement (execute_wrapper around cursor.execute: psycopg + round trip + "
        "server; not SQL compilation or row decoding), p50 over one task's tool steps, us:"
    )
    for kind, values in ana["statement_us"].items():
        say(f"    {p50(values):7.0f}  {kind}")
    say(f"    {sum(p50(v) for v in ana['statement_us'].values()):7.0f}  total (BEGIN and COMMIT not included)")
    say(
        f"  one bare round trip (SELECT 1, measured just before): psycopg p50 {p50(ana['rt_raw_us']):.0f} us, "
        f"through a Django cursor p50 {p50(ana['rt_django_us']):.0f} us -> {ana['steady_trips']} round trips ~ "
        f"{ana['steady_trips'] * p50(ana['rt_raw_us']) / 1000:.1f} ms of wire time per step"
    )
    say(f"  time per tool step     {fmt_dist(ana['step_ms'])}")
    say(f"  first step of a task   {fmt_dist(ana['first_ms'])}")
    say(f"  finishing message      {fmt_dist(ana['finish_ms'])}")
    say(f"  long task, steps 1-20:    {fmt_dist(ana['early_step_ms'])}")
    say(
        f"  long task, steps {ana['late_index']}-{ana['late_index'] + 19}: {fmt_dist(ana['late_step_ms'])}  "
        f"(p50 ratio {long_ratio:.2f}; the snapshot reads the latest step of each action only)"
    )
    say(
        f"  cProfile ({ana['profiled_messages']} messages; the profiler inflates absolute numbers ~2-3x, read the "
        f"shares), cumulative ms per message:"
    )
    for label, ms, calls in profile_breakdown(ana["profile"], ana["profiled_messages"]):
        say(f"    {label:54} {ms:7.3f}   {'' if calls != calls else f'{calls:5.1f} calls'}")
    say("  top self time, ms per message:")
    for label, ms in top_self(ana["profile"], ana["profiled_messages"]):
        say(f"    {ms:7.3f}  {label}")
    if "wprofile" in res:
        wp = res["wprofile"]
        msgs = wp["run"]["messages"]
        say()
        say(
            f"Worker-side cProfile (pool children, {wp['run']['steps']} steps / {msgs} messages, "
            f"{wp['run']['per_s']:.0f} steps/s under the profiler), cumulative ms per message:"
        )
        for label, ms, calls in profile_breakdown(wp["stats"], msgs, WORKER_FUNCS):
            say(f"    {label:54} {ms:7.3f}   {'' if calls != calls else f'{calls:5.1f} calls'}")
        say("  top self time, ms per message:")
        for label, ms in top_self(wp["stats"], msgs, 15):
            say(f"    {ms:7.3f}  {label}")
    say()
    checks = [
        ("governed steps/s >= 0.4 x bare no-op", ratio >= TARGETS["step_ratio"], f"{ratio:.2f}"),
        ("added latency p50 <= 5 ms", added_p50 <= TARGETS["added_p50_ms"], f"{added_p50:.2f} ms"),
        ("added latency p99 <= 25 ms", added_p99 <= TARGETS["added_p99_ms"], f"{added_p99:.2f} ms"),
        ("approve -> resume p50 < 50 ms", resume_p50 < TARGETS["approve_resume_p50_ms"], f"{resume_p50:.2f} ms"),
        (
            f"step {ana['late_index']} / step 1 p50 <= 1.2",
            long_ratio <= TARGETS["long_task_step_ratio"],
            f"{long_ratio:.2f}",
        ),
    ]
    say("Targets")
    for label, ok, value in checks:
        say(f"  {verdict(ok):6}  {label:40} {value}")
    say(f"total run time {total_s:.1f} s")
    say(
        json.dumps(
            {
                "celery_noop_per_s": round(burst["per_s"], 1),
                "governed_steps_per_s": round(gov["per_s"], 1),
                "step_ratio": round(ratio, 3),
                "added_p50_ms": round(added_p50, 2),
                "added_p99_ms": round(added_p99, 2),
                "approve_resume_p50_ms": round(resume_p50, 2),
                "approve_resume_p99_ms": round(pct(appr["resume_ms"], 99), 2),
                "noop_chain_per_s": round(chains["per_s"], 1),
                "noop_step_p50_ms": round(p50(noop_lat), 2),
                "governed_step_p50_ms": round(p50(gov_lat), 2),
                "sql_round_trips_per_step": ana["steady_trips"],
                "long_task_step_ratio": round(long_ratio, 3),
                "quick": quick,
                "worker_concurrency": args.concurrency,
                "fsync": server["fsync"],
                "targets_met": all(ok for _, ok, _ in checks),
                "load_before": round(load_before[0], 2),
                "cpu_elsewhere": round(busy_elsewhere, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, Stopped):
        say("interrupted: the worker and the private Redis were stopped, the scratch database dropped")
        sys.exit(130)
