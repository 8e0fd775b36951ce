"""Benchmark: the outbox relay delivering signed effects to a local receiver, and the audit
export (bench/audit_export.py's ``measure``).

    .venv/bin/python bench/integrations.py [--quick] [--keep-db]

Runs against the PostgreSQL of settings.DATABASE_URL in a database of its own,
``vigil_bench_relay``, created at the start and dropped at the end, and a private
``redis-server``. One benchmark per server at a time (the advisory lock of bench/benchlib.py).

Setup: one tenant with an endpoint (a bearer credential, a signing secret) pointing at the
demo's receiver (config/demo_receiver.py) in a process of its own on 127.0.0.1, which checks
every signature and applies each Idempotency-Key once; N tasks with one outbox message each,
inserted in bulk.

What is measured:

* baseline: the same signed POSTs straight to the receiver (agents.integrations.http, egress
  check included), no outbox, one process;
* the relay task by task (``relay_deliver_task``, what a step's kick runs on the ``relay``
  queue: the row lock, the POST, the recorded outcome), one process;
* the relay in batches (``relay_drain``, what the sweep's messages run), ``--processes``
  processes taking batches of ``--batch`` due messages until none is left.

Target: >= 500 deliveries/s. Then the audit export (``measure`` of bench/audit_export.py).
The last line printed is one JSON object with ``deliveries_per_s``, ``export_events_per_s`` and
``export_peak_rss_mb``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE, ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

from bench.benchlib import BENCH_DB_RE, BenchDatabase, db_urls, say  # noqa: E402
from bench.steps import PrivateRedis  # noqa: E402

TARGET_DELIVERIES_PER_S = 500.0
TENANT_DOMAIN = "relay.bench.localhost"
PASSWORD = "bench-relay-pass-9"  # noqa: S105  (the scratch tenant's admin, dropped with the database)
SIGNING_SECRET = "bench-signing-secret-0123456789"  # noqa: S105  (shared with the local receiver only)
BEARER_TOKEN = "bench-bearer-token"  # noqa: S105  (sent to the local receiver only)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def receiver_start(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VIGIL_DEMO_RECEIVER_SECRET": SIGNING_SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.demo_receiver", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the receiver did not start") from None
            time.sleep(0.05)


def setup(messages: int, url: str) -> tuple[Any, Any, list[int]]:
    """The tenant, its endpoint to ``url``, and ``messages`` tasks with one reply each."""
    from django.core.management import call_command

    from agents.integrations.services import credential_create, endpoint_create
    from agents.models import Endpoint
    from agents.services import agent_create
    from config.connection import connection
    from governance.actors import Actor
    from tenants.services import provision_request_build, spare_pool_fill, tenant_provision

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    spare_pool_fill(size=1)
    tenant = tenant_provision(
        request=provision_request_build(
            name="Bench relay",
            domain=TENANT_DOMAIN,
            tier="enterprise",
            admin_email=f"admin@{TENANT_DOMAIN}",
            admin_password=PASSWORD,
        )
    ).tenant
    connection.set_tenant(tenant)
    actor = Actor.operator("bench")
    agent = agent_create(name="support", blueprint="triage")
    credential_create(name="receiver-token", kind="bearer", secret=BEARER_TOKEN, actor=actor)
    endpoint = endpoint_create(
        name="receiver",
        url=url,
        kinds=["reply", "refund"],
        credential="receiver-token",
        signing_secret=SIGNING_SECRET,
        actor=actor,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO agents_task (agent_id, input, state, priority, attempt, retry_count, last_error,"
            " correlation_id, context, agent_version, created_at, updated_at)"
            " SELECT %s, '{}'::jsonb, 'verified', 2, 3, 0, '', '', '{}'::jsonb, 1, now(), now()"
            " FROM generate_series(1, %s)",
            [agent.pk, messages],
        )
        cursor.execute(
            "INSERT INTO agents_effect (idempotency_key, task_id, step_index, tool, arguments_hash, result, created_at)"
            " SELECT 'task:' || id || ':step:1', id, 1, 'send_reply', repeat('0', 64), '{\"sent\": true}'::jsonb,"
            " now() FROM agents_task WHERE agent_id = %s",
            [agent.pk],
        )
        cursor.execute(
            "INSERT INTO agents_outboxmessage (effect_id, kind, payload, created_at)"
            " SELECT id, 'reply', jsonb_build_object('to', 'dana@example.com', 'subject', 'Your order',"
            " 'body', 'We are on it: order ' || id || ' ships today.'), now() FROM agents_effect"
        )
        cursor.execute("ANALYZE")
        cursor.execute("SELECT id FROM agents_task WHERE agent_id = %s ORDER BY id", [agent.pk])
        task_ids = [row[0] for row in cursor.fetchall()]
    return tenant, Endpoint.objects.select_related("credential").get(pk=endpoint.pk), task_ids


def _relay_tasks(schema: str, task_ids: list[int]) -> int:
    """The path a step's kick takes: each task's messages, one task after the other."""
    from agents.integrations.relay import relay_deliver_task
    from config.connection import connection
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    return sum(relay_deliver_task(task_id=task_id) for task_id in task_ids)


def _relay_batches(schema: str, limit: int) -> int:
    """The sweep's path (``agents.relay_drain``): batches of due messages until none is left."""
    from agents.integrations.relay import relay_drain
    from config.connection import connection
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    return relay_drain(seconds=600, limit=limit)


def relay_rate_per_task(schema: str, task_ids: list[int]) -> float:
    started = time.perf_counter()
    delivered = _relay_tasks(schema, task_ids)
    elapsed = time.perf_counter() - started
    assert delivered == len(task_ids), (delivered, len(task_ids))
    return delivered / elapsed


def relay_rate_batches(schema: str, expected: int, processes: int, limit: int) -> float:
    """Deliveries per second of ``processes`` relays taking batches of ``limit``."""
    from django.db import connections

    connections.close_all()  # each forked relay opens its own
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        started = time.perf_counter()
        delivered = sum(pool.starmap(_relay_batches, [(schema, limit)] * processes))
        elapsed = time.perf_counter() - started
    assert delivered == expected, (delivered, expected)
    return delivered / elapsed


def baseline_rate(endpoint: Any, count: int) -> float:
    """Signed POSTs straight to the receiver, no outbox: what a delivery costs on the wire."""
    from agents.integrations.http import endpoint_post

    body = json.dumps({"kind": "reply", "payload": {"to": "dana@example.com", "body": "x" * 60}}).encode()
    started = time.perf_counter()
    for n in range(count):
        answer = endpoint_post(endpoint=endpoint, body=body, idempotency_key=f"baseline:{n}")
        assert answer.status == 200, answer.status
    return count / (time.perf_counter() - started)


def export_measure(quick: bool) -> dict[str, Any]:
    """The audit export's numbers from bench/audit_export.py (its own scratch database; the
    caller holds the one-benchmark lock)."""
    try:
        from bench.audit_export import measure
    except ImportError as exc:
        say(f"audit export: bench/audit_export.py is not available ({exc})")
        return {"export_events_per_s": None, "export_peak_rss_mb": None}
    found = measure(quick)
    return {
        "export_events_per_s": found.get("export_events_per_s"),
        "export_peak_rss_mb": found.get("export_peak_rss_mb"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 deliveries and a quick export; under a minute")
    parser.add_argument("--processes", type=int, default=4, help="relay processes of the parallel run")
    parser.add_argument("--batch", type=int, default=50, help="messages per relay transaction")
    parser.add_argument("--db-name", default="vigil_bench_relay", help="scratch database (must start with vigil_bench)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database at the end")
    parser.add_argument("--lock-wait", type=float, default=600, help="seconds to wait for another benchmark")
    parser.add_argument("--skip-export", action="store_true", help="only the relay")
    args = parser.parse_args(argv)
    if not BENCH_DB_RE.match(args.db_name):
        parser.error("--db-name must match vigil_bench[a-z0-9_]*")
    messages = 2_000 if args.quick else 20_000
    single = messages // 4

    _, bench_url, maint_url = db_urls(args.db_name)
    port = _free_port()
    os.environ.update(
        {
            "DATABASE_URL": bench_url,
            "DATABASE_OWNER_URL": bench_url,
            "VIGIL_ENV": "development",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VIGIL_LOG_LEVEL": "WARNING",
            "VIGIL_SPARE_POOL_SIZE": "1",
            "VIGIL_EGRESS_ALLOW": "127.0.0.1",
        }
    )
    db = BenchDatabase(maint_url, args.db_name, args.lock_wait)
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-relay-"))
    private_redis = receiver = None
    results: dict[str, Any] = {}
    try:
        db.create()
        private_redis = PrivateRedis(workdir)
        os.environ.update({"REDIS_URL": private_redis.url, "CELERY_BROKER_URL": private_redis.url})
        import django

        django.setup()
        receiver = receiver_start(port)
        say(f"== Vigil benchmark: outbox relay ({'quick' if args.quick else 'full'}) ==")
        say(f"python {platform.python_version()}, {os.cpu_count()} cores; receiver on 127.0.0.1:{port}")
        started = time.perf_counter()
        tenant, endpoint, task_ids = setup(messages, f"http://127.0.0.1:{port}/hooks")
        say(f"setup: {messages} outbox messages in {time.perf_counter() - started:.1f} s")
        baseline = baseline_rate(endpoint, single)
        one = relay_rate_per_task(tenant.schema_name, task_ids[:single])
        many = relay_rate_batches(tenant.schema_name, messages - single, args.processes, args.batch)
        from django.db import connections

        connections.close_all()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/received.json", timeout=30) as response:
            applied = json.loads(response.read())
        delivered_keys = {row["key"] for row in applied if row["key"].startswith("task:")}
        assert len(delivered_keys) == messages, (len(delivered_keys), messages)
        results = {
            "deliveries_per_s": round(many, 1),
            "relay_one_process_per_s": round(one, 1),
            "baseline_posts_per_s": round(baseline, 1),
        }
        say(f"{'baseline: signed POSTs, no outbox, 1 process':<48} {baseline:9.1f} /s")
        say(f"{'relay, task by task, 1 process':<48} {one:9.1f} /s  ({one / baseline:.2f}x baseline)")
        label = f"relay, batches of {args.batch}, {args.processes} processes"
        say(f"{label:<48} {many:9.1f} /s  ({many / baseline:.2f}x baseline)")
        say(f"every one of the {messages} effects applied once by the receiver (signatures checked)")
        verdict = "met" if many >= TARGET_DELIVERIES_PER_S else "MISSED"
        say(f"target deliveries_per_s >= {TARGET_DELIVERIES_PER_S:g}: {verdict}")
        if receiver is not None:
            receiver.terminate()
            receiver.wait(timeout=10)
            receiver = None
        # Still under this benchmark's lock: the export's benchmark runs in a database of its own.
        if args.skip_export:
            results.update({"export_events_per_s": None, "export_peak_rss_mb": None})
        else:
            results.update(export_measure(args.quick))
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait(timeout=10)
        if private_redis is not None:
            private_redis.stop()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            db.drop()
        db.close()
    print(json.dumps({**results, "messages": messages, "processes": args.processes, "quick": args.quick}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
