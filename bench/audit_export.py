"""Benchmark: the streamed audit export, its rate and its memory from 100k to 1M events.

    .venv/bin/python bench/audit_export.py [--quick] [--keep-db]

Runs against the PostgreSQL of settings.DATABASE_URL in a database of its own,
``vigil_bench_audit``, created at the start and dropped at the end. One benchmark per server
at a time (the advisory lock of bench/benchlib.py) when run as a script; ``measure()``, which
bench/integrations.py calls, leaves the lock to its caller.

Setup: two schemas holding a valid audit chain (the table of governance migration 0001, its
generated columns included) of 100,000 and 1,000,000 events (20,000 and 200,000 with
``--quick``), task-transition events of about 300 bytes, hashed here and loaded with COPY.

What is measured, each export in a fresh process (``--child``) so its peak RSS is its own:
``governance.export.audit_export`` of the whole chain, the code the API and
``manage.py export_audit`` stream, consumed as a response would be (every chunk produced,
then dropped), as JSONL and as CSV, after one untimed read that warms the server's cache.
Baseline, in the same process after the export: reading the same columns in the same seq
ranges with no formatting at all. The export's output is
then checked offline (``export_verify``) on the small chain.

Target: >= 100,000 events/s (JSONL, the large chain), and a flat peak RSS (the large
chain's within 10% + 20 MB of the small one's). The last line printed is one JSON object
with ``export_events_per_s`` and ``export_peak_rss_mb``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench.benchlib import BENCH_DB_RE, BenchDatabase, db_urls, libpq_url, say  # noqa: E402

TARGET_EVENTS_PER_S = 100_000
DB_NAME = "vigil_bench_audit"
SMALL, LARGE = "audit_small", "audit_large"


def _body_template() -> tuple[str, str, str]:
    """The canonical body of a task transition, cut where seq and ts_us go."""
    from governance.hashchain import FORMAT_VERSION, body_pieces

    return body_pieces(
        {
            "v": FORMAT_VERSION,
            "actor_type": "agent",
            "actor_id": "12",
            "actor_label": "refunds",
            "verb": "task.transition",
            "target_type": "task",
            "target_id": "104729",
            "correlation_id": "3f6c2a9e4b7d41c8a0e5d2b9c7f1a3e6",
            "data": {
                "agent_id": 12,
                "from": "running",
                "reason": "step 3 proposed a refund",
                "to": "awaiting_approval",
            },
        }
    )


def chain_load(url: str, events: int) -> None:
    """Schemas SMALL and LARGE with valid chains: LARGE holds ``events`` events, SMALL its
    first tenth."""
    import psycopg

    from governance.hashchain import GENESIS_HASH

    create = _table_sql()
    before_seq, before_ts, after_ts = _body_template()
    sha256 = hashlib.sha256
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for schema in (SMALL, LARGE):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(f"SET search_path = {schema}")
            conn.execute(create)
        conn.execute(f"SET search_path = {LARGE}")
        # The append-only trigger has nothing to refuse here; COPY only inserts.
        ts0 = 1_780_000_000_000_000
        prev = GENESIS_HASH
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY governance_auditevent (body, prev_hash, hash) FROM STDIN") as copy,
        ):
            for seq in range(1, events + 1):
                body = f"{before_seq}{seq}{before_ts}{ts0 + seq * 1000}{after_ts}"
                digest = sha256((prev + body).encode()).hexdigest()
                copy.write_row((body, prev, digest))
                prev = digest
        conn.execute(
            f"INSERT INTO {SMALL}.governance_auditevent (body, prev_hash, hash) "
            f"SELECT body, prev_hash, hash FROM {LARGE}.governance_auditevent WHERE seq <= %s ORDER BY seq",
            [events // 10],
        )
        for schema in (SMALL, LARGE):
            conn.execute(f"VACUUM ANALYZE {schema}.governance_auditevent")


def _table_sql() -> str:
    import importlib

    return str(importlib.import_module("governance.migrations.0001_initial").CREATE)


def _child_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DATABASE_OWNER_URL": url,
        "VIGIL_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VIGIL_LOG_LEVEL": "WARNING",
    }


def child(schema: str, fmt: str, verify: bool) -> dict[str, Any]:
    """In a fresh process: export ``schema``'s chain, then the baseline read."""
    import django

    django.setup()
    from config.connection import connection
    from governance.audit_query import audit_filter_parse
    from governance.export import audit_export
    from governance.verification import export_verify

    connection.set_schema(schema)

    def plain_read() -> int:
        """The same rows in the same ranges, nothing formatted: the baseline."""
        rows, after = 0, 0
        with connection.cursor() as cursor:
            while True:
                cursor.execute(
                    "SELECT seq, prev_hash, hash, body FROM governance_auditevent WHERE seq > %s "
                    "ORDER BY seq LIMIT 10000",
                    [after],
                )
                batch = cursor.fetchall()
                if not batch:
                    return rows
                rows += len(batch)
                after = batch[-1][0]

    plain_read()  # warms the server's cache, so that neither timed read pays for the disk
    started = time.perf_counter()
    export = audit_export(audit_filter=audit_filter_parse({}), fmt=fmt, actor=None)
    if verify:  # the export's text checked line by line as it streams
        return {"events": export.head_seq, "verified": export_verify(_lines(export.chunks)).events}
    size = 0
    for chunk in export.chunks:
        size += len(chunk)
    took = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    rows = plain_read()
    baseline_took = time.perf_counter() - started
    return {
        "events": export.head_seq,
        "bytes": size,
        "seconds": took,
        "events_per_s": export.head_seq / took,
        "peak_rss_mb": peak_mb,
        "baseline_rows_per_s": rows / baseline_took,
    }


def _lines(chunks: Any) -> Any:
    """The lines of a stream of chunks (each export chunk ends at a line's end)."""
    for chunk in chunks:
        yield from io.StringIO(chunk, newline="")


def _run_child(url: str, schema: str, fmt: str, *, verify: bool = False) -> dict[str, Any]:
    args = [sys.executable, str(Path(__file__).resolve()), "--child", schema, "--format", fmt]
    done = subprocess.run(
        [*args, *(["--verify"] if verify else [])],
        cwd=ROOT,
        env=_child_env(url),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the export process failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(quick: bool, *, db_name: str = DB_NAME, keep_db: bool = False, hold_lock: bool = False) -> dict[str, Any]:
    """Load the chains, export them, print the figures; returns them (the last line's keys).
    Takes the one-benchmark lock only with ``hold_lock`` (the caller may hold it already)."""
    if not BENCH_DB_RE.match(db_name):
        raise ValueError("the database name must match vigil_bench[a-z0-9_]*")
    events = 200_000 if quick else 1_000_000
    _, bench_url, maint_url = db_urls(db_name)
    db = BenchDatabase(maint_url, db_name, 600) if hold_lock else None
    if db is None:
        import psycopg

        with psycopg.connect(libpq_url(maint_url), autocommit=True) as maint:
            maint.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            maint.execute(f'CREATE DATABASE "{db_name}"')
    else:
        db.create()
    try:
        say(f"== Vigil benchmark: audit export ({'quick' if quick else 'full'}) ==")
        say(f"python {platform.python_version()}, {os.cpu_count()} cores")
        started = time.perf_counter()
        chain_load(bench_url, events)
        say(f"setup: chains of {events // 10:,} and {events:,} events in {time.perf_counter() - started:.1f} s")
        small = _run_child(bench_url, SMALL, "jsonl")
        large = _run_child(bench_url, LARGE, "jsonl")
        large_csv = _run_child(bench_url, LARGE, "csv")
        checked = _run_child(bench_url, SMALL, "jsonl", verify=True)
        if checked["verified"] != checked["events"]:
            raise RuntimeError(f"the small export verified {checked['verified']} of {checked['events']} events")
        for label, run in (("JSONL, small", small), ("JSONL, large", large), ("CSV, large", large_csv)):
            say(
                f"{label:13} {run['events']:>9,} events  {run['events_per_s']:>10,.0f} events/s  "
                f"{run['bytes'] / run['seconds'] / 1e6:6.1f} MB/s  peak RSS {run['peak_rss_mb']:6.1f} MB"
            )
        say(f"baseline: plain read of the same rows {large['baseline_rows_per_s']:>10,.0f} rows/s")
        say(f"export / plain read: {large['events_per_s'] / large['baseline_rows_per_s']:.2f}x")
        growth = large["peak_rss_mb"] - small["peak_rss_mb"]
        flat = large["peak_rss_mb"] <= small["peak_rss_mb"] * 1.1 + 20
        verdict = "flat" if flat else "GROWS"
        say(f"peak RSS {small['events']:,} -> {large['events']:,} events: {growth:+.1f} MB ({verdict})")
        say(f"offline check of the small export: {checked['verified']:,} events verified")
        met = large["events_per_s"] >= TARGET_EVENTS_PER_S
        say(f"target export >= {TARGET_EVENTS_PER_S:,} events/s: {'met' if met else 'MISSED'}")
        return {
            "export_events_per_s": round(large["events_per_s"]),
            "export_peak_rss_mb": round(large["peak_rss_mb"], 1),
            "export_peak_rss_small_mb": round(small["peak_rss_mb"], 1),
            "export_csv_events_per_s": round(large_csv["events_per_s"]),
            "export_baseline_rows_per_s": round(large["baseline_rows_per_s"]),
            "export_events": large["events"],
            "export_memory_flat": flat,
        }
    finally:
        if not keep_db:
            if db is not None:
                db.drop()
            else:
                import psycopg

                with psycopg.connect(libpq_url(maint_url), autocommit=True) as maint:
                    maint.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        if db is not None:
            db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 and 200,000 events")
    parser.add_argument("--db-name", default=DB_NAME, help="scratch database (must start with vigil_bench)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database at the end")
    parser.add_argument("--child", metavar="SCHEMA", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="jsonl", help=argparse.SUPPRESS)
    parser.add_argument("--verify", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.format, args.verify)))
        return 0
    if not BENCH_DB_RE.match(args.db_name):
        parser.error("--db-name must match vigil_bench[a-z0-9_]*")
    results = measure(args.quick, db_name=args.db_name, keep_db=args.keep_db, hold_lock=True)
    print(json.dumps({**results, "quick": args.quick}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
