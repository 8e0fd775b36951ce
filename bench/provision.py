"""Benchmark: tenant provisioning (warm pool vs. migrations) and the audit hash chain.

    .venv/bin/python bench/provision.py [--n 20] [--quick] [--diagnose] [--keep-db]

Runs against the PostgreSQL of settings.DATABASE_URL (default: the one ``python -m
config.services start`` runs for this checkout) but in a database of its own,
``vigil_bench``, created at the start and dropped at the end: the ``vigil`` database and the
test databases are never touched. One benchmark per server at a time (a session advisory lock
shared with bench/steps.py; a second run waits for it).

What is timed:

* fast path: ``tenant_provision`` with an invitation admin (no password) claiming a spare
  from a warm pool that was filled beforehand (filling is the background housekeeping job
  and is not part of the timing; its own cost, one ``spare_create`` per spare, is shown).
* migrations baseline: ``tenant_provision`` with an empty pool, i.e. CREATE SCHEMA + a full
  ``migrate_schemas`` of every tenant app + the same claim, end to end.
* password-hash cost, apart: ``make_password`` alone and ``tenant_provision`` with an
  admin password.
* audit appends, each ``audit_record`` in autocommit (one statement, its own transaction):
  1 writer on one tenant, 4 writer processes on one tenant, 4 writer processes on 4 tenants
  (processes, not threads: no GIL cap), each for a fixed time; the median of ``--repeats``
  runs is kept. CPU per event is measured in the writers and in their server backends
  (/proc, local server only).
* ``audit_chain_verify`` over 100k events (20k with --quick), median of 3 runs. The chain is
  filled through ``audit_record`` in 5k-event transactions (with --quick: COPY of events in
  the same format, hashed with governance.hashchain, to stay under a minute).

``--diagnose`` adds where the append time goes: the same statements sent straight through
psycopg with and without audit_record's savepoint, and the server cost of one INSERT with
the table's generated columns, with a parse-once trigger instead, and with no derived columns.

The last line printed is one JSON object with the headline numbers. ``audit_append_1t_per_s``
is the lower of 1 and 4 writers on one tenant; ``audit_append_4t_per_s`` is 4 writers on 4
tenants.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchlib import BENCH_DB_RE, BenchDatabase, db_urls, p50, pct, proc_cpu_s, say  # noqa: E402

TARGETS = {
    "fast_p50_ms": 50.0,  # at most
    "provision_ratio": 20.0,  # at least (migrate p50 / fast p50)
    "audit_append_1t_per_s": 500.0,
    "audit_append_4t_per_s": 2000.0,
    "audit_verify_per_s": 200_000.0,
}
PASSWORD = "bench-horse-battery-staple-9"  # noqa: S105 (the scratch tenants' admins, dropped with the database)


# --------------------------------------------------------------------------- helpers


def git_state() -> str:
    """The commit measured, and whether the working tree differed from it."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        return f"git {out.stdout.strip()}" if out.returncode == 0 else "git state unknown"
    except (OSError, subprocess.SubprocessError):
        return "git state unknown"


# --------------------------------------------------------------------------- provisioning


def provision(label: str, *, password: str | None = None) -> tuple[float, float, Any]:
    """Validate and provision one tenant; returns (build ms, tenant_provision ms, result)."""
    from tenants.services import provision_request_build, tenant_provision

    domain = f"{label.replace('_', '-')}.bench.localhost"
    t0 = time.perf_counter()
    request = provision_request_build(
        name=f"Bench {label}", domain=domain, tier="starter", admin_email=f"admin@{domain}", admin_password=password
    )
    t1 = time.perf_counter()
    result = tenant_provision(request=request)
    t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, result


def pool_fill(count: int) -> list[float]:
    """Create ``count`` spares one after the other (the housekeeping job's work); ms each."""
    from tenants.services import spare_create

    took = []
    for _ in range(count):
        t0 = time.perf_counter()
        spare_create()
        took.append((time.perf_counter() - t0) * 1000)
    return took


def bench_provisioning(n: int, password_runs: int, warmup: bool) -> dict[str, Any]:
    from django.contrib.auth.hashers import get_hasher, make_password

    from tenants.selectors import spare_count

    out: dict[str, Any] = {"schemas": []}
    warm = 1 if warmup else 0

    say(f"filling the warm pool with {warm + n + password_runs} spares (not timed: housekeeping) ...")
    out["spare_create_ms"] = pool_fill(warm + n + password_runs)

    if warm:
        _, _, result = provision("warm_fast")
        out["schemas"].append(result.tenant.schema_name)
    fast, build, claim, admin, rest = [], [], [], [], []
    for i in range(n):
        b_ms, p_ms, result = provision(f"fast_{i:03d}")
        assert result.from_pool, "fast path did not come from the pool"
        t = result.timings_ms
        fast.append(p_ms)
        build.append(b_ms)
        claim.append(t["claim"])
        admin.append(t["admin_user"])
        rest.append(p_ms - t["claim"] - t["admin_user"])
        out["schemas"].append(result.tenant.schema_name)
    out.update(fast_ms=fast, build_ms=build, claim_ms=claim, admin_ms=admin, rest_ms=rest)

    # Password-hash cost, apart.
    hasher = get_hasher()
    out["hasher"] = f"{hasher.algorithm}, {getattr(hasher, 'iterations', '?')} iterations"
    hashes = []
    for _ in range(3):
        t0 = time.perf_counter()
        make_password(PASSWORD)
        hashes.append((time.perf_counter() - t0) * 1000)
    out["make_password_ms"] = hashes
    pw_total, pw_admin, pw_build = [], [], []
    for i in range(password_runs):
        b_ms, p_ms, result = provision(f"pass_{i:03d}", password=PASSWORD)
        assert result.from_pool
        pw_total.append(p_ms)
        pw_admin.append(result.timings_ms["admin_user"])
        pw_build.append(b_ms)
        out["schemas"].append(result.tenant.schema_name)
    out.update(pw_ms=pw_total, pw_admin_ms=pw_admin, pw_build_ms=pw_build)

    # Migrations baseline: the pool is empty now, so tenant_provision migrates a new schema.
    remaining = spare_count()
    assert remaining == 0, f"pool should be empty, {remaining} spare(s) left"
    say(f"provisioning {warm + n} tenants with an empty pool (full migrations) ...")
    if warm:
        _, _, result = provision("warm_migr")
        out["schemas"].append(result.tenant.schema_name)
    migr = []
    for i in range(n):
        _, p_ms, result = provision(f"migr_{i:03d}")
        assert not result.from_pool, "migration path came from the pool"
        migr.append(p_ms)
        out["schemas"].append(result.tenant.schema_name)
    out["migrate_ms"] = migr
    from config.connection import connection

    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{out["schemas"][-1]}".django_migrations')
        out["tenant_migrations"] = cursor.fetchone()[0]
    return out


# --------------------------------------------------------------------------- audit appends


def _raw_append_loop(connection: Any, writer: int, deadline: float, savepoint: bool) -> int:
    """--diagnose: an append as audit_record did it at the first commit (advisory lock, head
    read, INSERT of the same body), sent straight through psycopg without Django's layers,
    with or without the SAVEPOINT/RELEASE that a nested atomic() adds inside the caller's
    transaction: 7 or 5 round trips with BEGIN and COMMIT."""
    from governance.hashchain import FORMAT_VERSION, GENESIS_HASH, canonical_json, chain_hash
    from governance.services import AUDIT_LOCK_CLASS

    raw = connection.connection
    cursor = raw.cursor()
    count = 0
    while True:
        with raw.transaction():
            if savepoint:
                cursor.execute("SAVEPOINT bench")
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", [AUDIT_LOCK_CLASS])
            cursor.execute("SELECT seq, hash FROM governance_auditevent ORDER BY seq DESC LIMIT 1")
            head = cursor.fetchone()
            seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
            body = canonical_json(
                {
                    "v": FORMAT_VERSION,
                    "seq": seq,
                    "ts_us": time.time_ns() // 1000,
                    "actor_type": "system",
                    "actor_id": "",
                    "actor_label": f"bench-writer-{writer}",
                    "verb": "bench.append",
                    "target_type": "bench",
                    "target_id": str(count),
                    "correlation_id": f"bench-{writer}",
                    "data": {"writer": writer, "n": count},
                }
            )
            cursor.execute(
                "INSERT INTO governance_auditevent (body, prev_hash, hash) VALUES (%s, %s, %s)",
                [body, prev, chain_hash(prev, body)],
            )
            if savepoint:
                cursor.execute("RELEASE SAVEPOINT bench")
        count += 1
        if time.perf_counter() >= deadline:
            return count


def _append_worker(schema: str, seconds: float, writer: int, barrier: Any, queue: Any, mode: str) -> None:
    from django.db import connections

    from config.connection import connection
    from governance.actors import Actor
    from governance.context import set_correlation_id
    from governance.services import audit_record
    from tenants.models import Tenant

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's clean-up handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops and cleans up
    connections.close_all()  # never reuse the parent's socket (it was closed before fork anyway)
    try:
        connection.set_tenant(Tenant.objects.get(schema_name=schema))
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        actor = Actor.system(f"bench-writer-{writer}")
        set_correlation_id(f"bench-{writer}")
        barrier.wait(timeout=60)
        server0, client0 = proc_cpu_s(backend), time.process_time()
        count, started = 0, time.perf_counter()
        deadline = started + seconds
        if mode == "audit_record":
            while True:
                # Autocommit: the append is one statement, its own transaction.
                audit_record(
                    actor=actor,
                    verb="bench.append",
                    target_type="bench",
                    target_id=count,
                    data={"writer": writer, "n": count},
                )
                count += 1
                if time.perf_counter() >= deadline:
                    break
        else:
            count = _raw_append_loop(connection, writer, deadline, savepoint=mode == "raw_savepoint")
        elapsed = time.perf_counter() - started
        client = time.process_time() - client0
        server1 = proc_cpu_s(backend)
        server = server1 - server0 if server0 is not None and server1 is not None else None
        queue.put((writer, count, elapsed, "", client, server))
    except BaseException as exc:  # reported to the parent
        queue.put((writer, 0, 0.0, f"{type(exc).__name__}: {exc}", 0.0, None))
    finally:
        connections.close_all()


def append_run(schemas: list[str], seconds: float, mode: str = "audit_record") -> dict[str, Any]:
    """One writer process per entry of ``schemas`` (repeat a schema for several writers on one
    chain), all started together, each appending for ``seconds``."""
    from django.db import connections

    ctx = multiprocessing.get_context("fork")
    connections.close_all()
    barrier = ctx.Barrier(len(schemas))
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_append_worker, args=(schema, seconds, i, barrier, queue, mode), daemon=True)
        for i, schema in enumerate(schemas)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    errors = [r[3] for r in results if r[3]]
    if errors:
        raise RuntimeError("append writer failed: " + "; ".join(errors))
    events = sum(r[1] for r in results)
    wall = max(r[2] for r in results)
    servers = [r[5] for r in results]
    return {
        "writers": len(schemas),
        "tenants": len(set(schemas)),
        "events": events,
        "seconds": wall,
        "per_s": events / wall,
        "per_writer": sorted(r[1] for r in results),
        "client_cpu_us": sum(r[4] for r in results) / events * 1e6,
        "server_cpu_us": None if None in servers else sum(servers) / events * 1e6,
    }


def chain_check(schema: str) -> Any:
    from config.connection import connection
    from governance.verification import audit_chain_verify
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    try:
        return audit_chain_verify()
    finally:
        connection.set_schema_to_public()


def statements_per_append(schema: str) -> list[str]:
    """What one ``audit_record(...)`` in autocommit sends, statement by statement."""
    from config.connection import connection
    from governance.actors import Actor
    from governance.services import audit_record
    from tenants.models import Tenant

    sent: list[str] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append(" ".join(sql.split()[:2]) if sql.split()[0].upper() != "SELECT" else sql.split("(")[0].strip())
        return execute(sql, params, many, context)

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    try:
        with connection.cursor() as cursor:  # the tenant's search_path is set once, here
            cursor.execute("SELECT 1")
        with connection.execute_wrapper(spy):
            audit_record(actor=Actor.system("bench-spy"), verb="bench.spy", target_type="bench", data={})
    finally:
        connection.set_schema_to_public()
    return sent


def bench_appends(schemas: list[str], seconds: float, repeats: int) -> dict[str, Any]:
    """Each case ``repeats`` times (interleaved); the run with the median rate is kept."""
    one, four = schemas[0], schemas[1:5]
    cases = (("1w_1t", [one]), ("4w_1t", [one] * 4), ("4w_4t", four))
    statements = statements_per_append(one)
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in cases}
    for rep in range(repeats):
        for key, writers in cases:
            say(
                f"audit appends: {len(writers)} writer(s) on {len(set(writers))} tenant(s), {seconds:g} s "
                f"(run {rep + 1}/{repeats}) ..."
            )
            runs[key].append(append_run(writers, seconds))
    out: dict[str, Any] = {}
    for key, _ in cases:
        ordered = sorted(runs[key], key=lambda r: r["per_s"])
        out[key] = dict(ordered[(len(ordered) - 1) // 2], all_per_s=[r["per_s"] for r in runs[key]])
    out["statements"] = statements
    out["chains"] = {s: chain_check(s) for s in [one, *four]}
    return out


# Server-side cost of one INSERT into the audit table's shape, in temporary tables: the real
# one (10 columns GENERATED from body, each expression re-parsing body::jsonb), the same
# columns filled by a BEFORE INSERT trigger that parses body once, and body/hashes only.
INSERT_SHAPES_SQL = r"""
CREATE TEMP TABLE bench_generated (LIKE governance_auditevent INCLUDING ALL);
CREATE TEMP TABLE bench_trigger (body text NOT NULL, prev_hash char(64) NOT NULL, hash char(64) NOT NULL,
    seq bigint PRIMARY KEY, created_at timestamptz, actor_type varchar(16), actor_id varchar(64),
    actor_label varchar(200), verb varchar(100), target_type varchar(100), target_id varchar(100),
    correlation_id varchar(64), data jsonb);
CREATE INDEX ON bench_trigger (created_at);
CREATE INDEX ON bench_trigger (verb);
CREATE INDEX ON bench_trigger (actor_type, actor_id);
CREATE INDEX ON bench_trigger (target_type, target_id);
CREATE FUNCTION pg_temp.bench_derive() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE j jsonb := NEW.body::jsonb;
BEGIN
    NEW.seq := (j ->> 'seq')::bigint;
    NEW.created_at := to_timestamp((j ->> 'ts_us')::bigint / 1000000.0);
    NEW.actor_type := j ->> 'actor_type'; NEW.actor_id := j ->> 'actor_id';
    NEW.actor_label := j ->> 'actor_label'; NEW.verb := j ->> 'verb';
    NEW.target_type := j ->> 'target_type'; NEW.target_id := j ->> 'target_id';
    NEW.correlation_id := j ->> 'correlation_id'; NEW.data := j -> 'data';
    RETURN NEW;
END $$;
CREATE TRIGGER bench_derive BEFORE INSERT ON bench_trigger FOR EACH ROW EXECUTE FUNCTION pg_temp.bench_derive();
CREATE TEMP TABLE bench_plain (seq bigint PRIMARY KEY, body text NOT NULL, prev_hash char(64) NOT NULL,
    hash char(64) NOT NULL);
CREATE FUNCTION pg_temp.bench_fill(tbl text, rows int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE b text;
BEGIN
    FOR i IN 1..rows LOOP
        b := format('{"actor_id":"","actor_label":"bench-writer-0","actor_type":"system",'
                    '"correlation_id":"bench-0","data":{"n":%s,"writer":0},"seq":%s,"target_id":"%s",'
                    '"target_type":"bench","ts_us":%s,"v":1,"verb":"bench.append"}',
                    i, i, i, 1764000000000000 + i);
        -- Dynamic statements for every shape: each is planned every time, as a client's is.
        IF tbl = 'bench_plain' THEN
            EXECUTE 'INSERT INTO bench_plain (seq, body, prev_hash, hash) VALUES ($4, $1, $2, $3)'
                USING b, repeat('0', 64), repeat('1', 64), i;
        ELSE
            EXECUTE format('INSERT INTO %I (body, prev_hash, hash) VALUES ($1, $2, $3)', tbl)
                USING b, repeat('0', 64), repeat('1', 64);
        END IF;
    END LOOP;
END $$;
"""


def insert_shapes(schema: str, rows: int = 5_000) -> dict[str, float]:
    """µs per INSERT, server side only (a PL/pgSQL loop), for each shape of INSERT_SHAPES_SQL."""
    from django.db import transaction

    from config.connection import connection
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    out = {}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(INSERT_SHAPES_SQL)
            for table in ("bench_generated", "bench_trigger", "bench_plain"):
                t0 = time.perf_counter()
                cursor.execute("SELECT pg_temp.bench_fill(%s, %s)", [table, rows])
                out[table] = (time.perf_counter() - t0) / rows * 1e6
            transaction.set_rollback(True)
    finally:
        connection.set_schema_to_public()
    return out


def bench_diagnose(schemas: list[str], seconds: float, repeats: int) -> dict[str, Any]:
    """Each variant ``repeats`` times (interleaved); the run with the median rate is kept."""
    four = schemas[1:5]
    modes = ("audit_record", "raw_savepoint", "raw")
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for rep in range(repeats):
        for mode in modes:
            say(f"diagnose: 4 writers on 4 tenants, {mode}, {seconds:g} s (run {rep + 1}/{repeats}) ...")
            runs[mode].append(append_run(four, seconds, mode))
    out: dict[str, Any] = {}
    for mode in modes:
        ordered = sorted(runs[mode], key=lambda r: r["per_s"])
        out[mode] = dict(ordered[(len(ordered) - 1) // 2], all_per_s=[r["per_s"] for r in runs[mode]])
    say("diagnose: server-side INSERT cost by table shape ...")
    out["insert_us"] = insert_shapes(schemas[0])
    out["chains"] = {s: chain_check(s) for s in four}
    return out


# --------------------------------------------------------------------------- verification


def fill_audit_record(todo: int, batch: int) -> None:
    """Append ``todo`` events to the current schema's chain through audit_record, ``batch``
    events per transaction."""
    from django.db import transaction

    from governance.actors import Actor
    from governance.services import audit_record

    actor = Actor.system("bench-filler")
    done = 0
    while done < todo:
        step = min(batch, todo - done)
        with transaction.atomic():
            for i in range(step):
                audit_record(
                    actor=actor,
                    verb="bench.fill",
                    target_type="bench",
                    target_id=done + i,
                    data={"n": done + i, "note": "verify benchmark filler"},
                )
        done += step


def fill_copy(todo: int, batch: int) -> None:
    """The same chain, faster: one real event through audit_record gives the current body
    format, the rest are that body with the next seq, time and target, hashed with
    governance.hashchain and streamed with COPY under the chain's advisory lock, ``batch``
    events per transaction. Used by --quick, whose time budget the audit_record path exceeds
    on a loaded 2-core machine."""
    from django.db import transaction

    from config.connection import connection
    from governance.actors import Actor
    from governance.hashchain import canonical_json, chain_hash
    from governance.services import AUDIT_LOCK_CLASS, audit_record

    if todo <= 0:
        return
    with transaction.atomic():
        audit_record(
            actor=Actor.system("bench-filler"),
            verb="bench.fill",
            target_type="bench",
            target_id=0,
            data={"n": 0, "note": "verify benchmark filler"},
        )
    done = 1
    while done < todo:
        step = min(batch, todo - done)
        with transaction.atomic():
            with connection.cursor() as cursor:  # also sets the tenant's search_path on the session
                cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", [AUDIT_LOCK_CLASS])
                cursor.execute("SELECT seq, hash, body FROM governance_auditevent ORDER BY seq DESC LIMIT 1")
                seq, prev, body = cursor.fetchone()
            template = json.loads(body)
            with (
                connection.connection.cursor() as raw,
                raw.copy("COPY governance_auditevent (body, prev_hash, hash) FROM STDIN") as copy,
            ):
                for i in range(done, done + step):
                    seq += 1
                    event = dict(
                        template,
                        seq=seq,
                        ts_us=time.time_ns() // 1000,
                        target_id=str(i),
                        data={"n": i, "note": "verify benchmark filler"},
                    )
                    text = canonical_json(event)
                    digest = chain_hash(prev, text)
                    copy.write_row((text, prev, digest))
                    prev = digest
        done += step


def bench_verify(schema: str, events: int, batch: int, runs: int, fill: str) -> dict[str, Any]:
    from config.connection import connection
    from governance.verification import audit_chain_verify
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM governance_auditevent")
            have = cursor.fetchone()[0]
        todo = max(0, events - have)
        how = "through audit_record" if fill == "audit_record" else "with COPY (format of a real audit_record event)"
        say(f"appending {todo} events to {schema} {how}, {batch} per transaction ...")
        t0 = time.perf_counter()
        (fill_audit_record if fill == "audit_record" else fill_copy)(todo, batch)
        fill_s = time.perf_counter() - t0
        with connection.cursor() as cursor:  # what autovacuum would soon do after such a load
            cursor.execute("ANALYZE governance_auditevent")
        took, report = [], None
        for _ in range(runs):
            t0 = time.perf_counter()
            report = audit_chain_verify()
            took.append(time.perf_counter() - t0)
        assert report is not None and report.ok, f"chain broken: {report}"
        return {
            "events": report.events,
            "fill_s": fill_s,
            "filled": todo,
            "fill": fill,
            "verify_s": took,
            "per_s": report.events / p50(took),
            "per_s_best": report.events / min(took),
        }
    finally:
        connection.set_schema_to_public()


# --------------------------------------------------------------------------- report


def fmt_ms(values: list[float]) -> str:
    return f"p50 {p50(values):8.1f}  p95 {pct(values, 95):8.1f}  min {min(values):8.1f}  max {max(values):8.1f}"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=int, default=None, help="tenants per provisioning path (default 20; 5 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes; finishes in under a minute")
    parser.add_argument(
        "--verify-events", type=int, default=None, help="events in the verified chain (100k; 20k quick)"
    )
    parser.add_argument(
        "--append-seconds", type=float, default=None, help="length of each append run (5 s; 1.5 s quick)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="runs of each append case, median kept (3)")
    parser.add_argument(
        "--fill",
        choices=("audit_record", "copy"),
        default=None,
        help="how the verified chain is filled (audit_record; copy with --quick)",
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also run the audit-append diagnosis: the same statements without Django's "
        "layers, with and without the savepoint, and the INSERT cost by table shape",
    )
    parser.add_argument("--db-name", default="vigil_bench", help="scratch database (must start with vigil_bench)")
    parser.add_argument(
        "--wait",
        type=float,
        default=900.0,
        help="seconds to wait for another benchmark on the same server to finish (900)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database at the end")
    args = parser.parse_args(argv)

    n = args.n if args.n is not None else (5 if args.quick else 20)
    if n < 2:
        parser.error("--n must be at least 2")
    verify_events = args.verify_events or (20_000 if args.quick else 100_000)
    seconds = args.append_seconds or (1.5 if args.quick else 5.0)
    fill = args.fill or ("copy" if args.quick else "audit_record")
    repeats = args.repeats or 3
    password_runs = 1 if args.quick else 3
    warmup = not args.quick
    if not BENCH_DB_RE.match(args.db_name):
        parser.error("--db-name must match vigil_bench[a-z0-9_]*")

    _, bench_url, maint_url = db_urls(args.db_name)
    # Settings read these when django.setup() imports them: point Django at the scratch database.
    os.environ["DATABASE_URL"] = os.environ["DATABASE_OWNER_URL"] = bench_url
    os.environ.setdefault("VIGIL_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("VIGIL_LOG_LEVEL", "WARNING")
    os.environ.setdefault("VIGIL_SPARE_POOL_SIZE", "0")

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")  # runs the clean-up below

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    db = BenchDatabase(maint_url, args.db_name, args.wait)
    started = time.perf_counter()  # not counting the wait for another benchmark
    load_before = os.getloadavg()
    server = db.settings()
    results: dict[str, Any] = {}
    try:
        say(f"== Vigil benchmark: provisioning and audit chain ({'quick' if args.quick else 'full'}) ==")
        say(
            f"database {args.db_name} on {urllib.parse.urlsplit(bench_url).netloc} (created for this run, "
            f"{'kept' if args.keep_db else 'dropped'} at the end)"
        )
        db.create()

        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        t0 = time.perf_counter()
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        results["shared_migrate_s"] = time.perf_counter() - t0

        results["prov"] = bench_provisioning(n, password_runs, warmup)
        schemas = [s for s in results["prov"]["schemas"] if not s.startswith("warm")]
        results["audit"] = bench_appends(schemas[:5], seconds, repeats)
        if args.diagnose:
            results["diagnose"] = bench_diagnose(schemas[:5], seconds, repeats)
        verify_schema = schemas[5] if len(schemas) > 5 else schemas[-1]
        results["verify"] = bench_verify(verify_schema, verify_events, 5_000, 3, fill)
        connections.close_all()
    finally:
        try:
            if "django" in sys.modules:
                from django.db import connections

                connections.close_all()
            if not args.keep_db:
                db.drop()
        finally:
            db.close()
    total_s = time.perf_counter() - started
    load_after = os.getloadavg()

    prov, audit, ver = results["prov"], results["audit"], results["verify"]
    fast_p50, migr_p50 = p50(prov["fast_ms"]), p50(prov["migrate_ms"])
    ratio = migr_p50 / fast_p50
    a1w, a4w1t, a4t = audit["1w_1t"]["per_s"], audit["4w_1t"]["per_s"], audit["4w_4t"]["per_s"]
    fsync_off = server["fsync"] != "on" or server["synchronous_commit"] == "off"

    say()
    say(
        f"PostgreSQL {server['server_version']}: fsync={server['fsync']} "
        f"synchronous_commit={server['synchronous_commit']} full_page_writes={server['full_page_writes']} "
        f"shared_buffers={server['shared_buffers']}"
    )
    if fsync_off:
        say(
            "  NOTE: durability is off on this server (started with `config.services start --fast`): commits "
            "do not wait for the disk, so commit-bound numbers (appends, provisioning) are optimistic."
        )
    say(
        f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min; other work on the "
        f"machine, e.g. test runs on the same server, shows here and skews the numbers)"
    )
    say(f"code: {git_state()}; shared-schema migrate of the scratch database: {results['shared_migrate_s']:.1f} s")
    say()
    say(
        f"Provisioning, {n} tenants per path, ms (tenant_provision only; "
        f"{'1 untimed warm-up each' if warmup else 'no warm-up'})"
    )
    say(f"  fast path (warm pool, invitation)   {fmt_ms(prov['fast_ms'])}")
    say(f"    claim (select spare + RENAME + row + domain)  p50 {p50(prov['claim_ms']):6.1f}")
    say(f"    admin_user (user + group, unusable password)   p50 {p50(prov['admin_ms']):6.1f}")
    say(f"    rest (invitation token, 2 audit events, commit) p50 {p50(prov['rest_ms']):6.1f}")
    say(f"    (apart: provision_request_build validation     p50 {p50(prov['build_ms']):6.1f})")
    say(f"  migrations path (empty pool)        {fmt_ms(prov['migrate_ms'])}")
    say(f"    (CREATE SCHEMA + migrate_schemas: {prov['tenant_migrations']} migrations per tenant schema today)")
    say(f"  spare_create (pool refill, housekeeping, untimed above) {fmt_ms(prov['spare_create_ms'])}")
    say(f"  ratio migrations p50 / fast p50: {ratio:.1f}x")
    say(
        f"  password-hash cost ({prov['hasher']}): make_password p50 {p50(prov['make_password_ms']):.1f} ms; "
        f"fast path with --admin-password p50 {p50(prov['pw_ms']):.1f} ms "
        f"(admin_user {p50(prov['pw_admin_ms']):.1f} ms), plus validate_password in the request build "
        f"p50 {p50(prov['pw_build_ms']):.1f} ms"
    )
    say()
    say("Audit appends (each append its own transaction; writer processes)")
    say(f"  one append = {len(audit['statements'])} round trips: {' | '.join(audit['statements'])}")
    for key, label in (
        ("1w_1t", "1 writer,  1 tenant "),
        ("4w_1t", "4 writers, 1 tenant "),
        ("4w_4t", "4 writers, 4 tenants"),
    ):
        r = audit[key]
        cpu = f"client {r['client_cpu_us']:.0f} us"
        if r["server_cpu_us"] is not None:
            cpu += f" + server {r['server_cpu_us']:.0f} us"
        runs = "" if len(r["all_per_s"]) == 1 else f"; runs {', '.join(f'{v:.0f}' for v in r['all_per_s'])}/s"
        say(
            f"  {label}  {r['per_s']:8.0f} events/s  ({r['events']} events in {r['seconds']:.2f} s; per writer "
            f"{r['per_writer']}; CPU per event {cpu}{runs})"
        )
    r = audit["4w_4t"]
    if r["server_cpu_us"] is not None:
        per_event = (r["client_cpu_us"] + r["server_cpu_us"]) / 1e6
        say(
            f"  CPU-bound ceiling on this machine with writers and server sharing {os.cpu_count()} cores: "
            f"~{(os.cpu_count() or 1) / per_event:.0f} events/s"
        )
    broken = [s for s, rep in audit["chains"].items() if not rep.ok]
    say(
        f"  chains after the runs: {'all intact' if not broken else 'BROKEN: ' + ', '.join(broken)} "
        f"({sum(rep.events for rep in audit['chains'].values())} events re-verified)"
    )
    say()
    diag = results.get("diagnose")
    if diag:
        say(
            "  Diagnosis, 4 writers on 4 tenants. Raw = BEGIN, [SAVEPOINT], advisory lock, head read, INSERT "
            "of the same body, [RELEASE], COMMIT sent straight through psycopg:"
        )
        for mode, label in (
            ("audit_record", "audit_record, autocommit (as above)        "),
            ("raw_savepoint", "raw psycopg, 7 round trips (with savepoint)"),
            ("raw", "raw psycopg, 5 round trips (no savepoint)  "),
        ):
            r = diag[mode]
            runs = "" if len(r["all_per_s"]) == 1 else f"; runs {', '.join(f'{v:.0f}' for v in r['all_per_s'])}/s"
            say(
                f"    {label} {r['per_s']:6.0f} events/s  CPU per event client {r['client_cpu_us']:.0f} us"
                + (f" + server {r['server_cpu_us']:.0f} us" if r["server_cpu_us"] is not None else "")
                + runs
            )
        ins = diag["insert_us"]
        say(
            f"    server INSERT alone: generated columns {ins['bench_generated']:.0f} us, same columns by a "
            f"parse-once trigger {ins['bench_trigger']:.0f} us, body+hashes only {ins['bench_plain']:.0f} us"
        )
        bad = [s for s, rep in diag["chains"].items() if not rep.ok]
        say(f"    chains after the diagnosis runs: {'all intact' if not bad else 'BROKEN: ' + ', '.join(bad)}")
        say()
    say(
        f"Verify: {ver['events']} events; filled {ver['filled']} "
        f"{'through audit_record' if ver['fill'] == 'audit_record' else 'with COPY'} in {ver['fill_s']:.1f} s "
        f"({ver['filled'] / max(ver['fill_s'], 1e-9):.0f}/s in 5k-event transactions)"
    )
    say(
        f"  audit_chain_verify runs: {', '.join(f'{s:.3f} s' for s in ver['verify_s'])} -> "
        f"{ver['per_s']:.0f} events/s (median run), best {ver['per_s_best']:.0f}/s"
    )
    say()
    checks = [
        ("fast path p50 <= 50 ms", fast_p50 <= TARGETS["fast_p50_ms"], f"{fast_p50:.1f} ms"),
        ("fast path >= 20x faster than migrations", ratio >= TARGETS["provision_ratio"], f"{ratio:.1f}x"),
        (">= 500 appends/s on one tenant, 1 writer", a1w >= TARGETS["audit_append_1t_per_s"], f"{a1w:.0f}/s"),
        (">= 500 appends/s on one tenant, 4 writers", a4w1t >= TARGETS["audit_append_1t_per_s"], f"{a4w1t:.0f}/s"),
        (">= 2,000 appends/s across 4 tenants", a4t >= TARGETS["audit_append_4t_per_s"], f"{a4t:.0f}/s"),
        (">= 200k verified events/s", ver["per_s"] >= TARGETS["audit_verify_per_s"], f"{ver['per_s']:.0f}/s"),
    ]
    say("Targets")
    for label, ok, value in checks:
        say(f"  {verdict(ok):6}  {label:45} {value}")
    say(f"total run time {total_s:.1f} s")
    say(
        json.dumps(
            {
                "fast_p50_ms": round(fast_p50, 2),
                "migrate_p50_ms": round(migr_p50, 2),
                "provision_ratio": round(ratio, 2),
                "audit_append_1t_per_s": round(min(a1w, a4w1t), 1),
                "audit_append_4t_per_s": round(a4t, 1),
                "audit_verify_per_s": round(ver["per_s"], 1),
                "fast_p95_ms": round(pct(prov["fast_ms"], 95), 2),
                "make_password_ms": round(p50(prov["make_password_ms"]), 2),
                "audit_append_1t_1w_per_s": round(a1w, 1),
                "audit_append_1t_4w_per_s": round(a4w1t, 1),
                "n": n,
                "quick": args.quick,
                "fsync": server["fsync"],
                "synchronous_commit": server["synchronous_commit"],
                "code": git_state(),
                "targets_met": all(ok for _, ok, _ in checks),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
