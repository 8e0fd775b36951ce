"""Benchmark: the API's list endpoints with many rows, and the cost of the tenant throttle.

    .venv/bin/python bench/api.py [--quick] [--keep-db]

Runs against the PostgreSQL of settings.DATABASE_URL in a database of its own,
``vigil_bench_api``, created at the start and dropped at the end, and a private
``redis-server`` (the throttle's counters), started and stopped here. One benchmark per
server at a time (the advisory lock of bench/benchlib.py).

Setup: one tenant, 10,000 rows (2,000 with ``--quick``) in each listed table: agents, tasks,
approval requests and audit events (copies of one made through the services, inserted in bulk;
the audit events through the append function, one by one).

What is measured, in this process (django.test.Client with a Bearer token, no network):

* each list endpoint (agents, tasks, approvals, audit when present) at page sizes 10 and 50:
  p50 and p95 latency and the most queries one request made;
* baseline: ``GET /api/v1/auth/me/`` (authentication, throttle and middleware only);
* the throttle's work per request (the Redis pipeline and the tenant's limit), p50, against a
  bare Redis PING in the same run.

Targets: list p50 <= 15 ms, <= 4 queries per request whatever the page size, throttle overhead
<= 1 ms. The last line printed is one JSON object with ``list_p50_ms``, ``list_p95_ms``,
``max_queries`` and ``throttle_overhead_ms``.
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
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench.benchlib import BENCH_DB_RE, BenchDatabase, db_urls, pct, say  # noqa: E402
from bench.steps import PrivateRedis  # noqa: E402

REFUND_TICKET = {
    "text": "Please refund 25 EUR for order #AB1234, it arrived broken",
    "customer_email": "dana@example.com",
    "subject": "Broken parcel",
}
TARGETS = {"list_p50_ms": 15.0, "max_queries": 4, "throttle_overhead_ms": 1.0}
TENANT_DOMAIN = "api.bench.localhost"
PASSWORD = "bench-api-pass-9"  # noqa: S105  (the scratch tenant's admin, dropped with the database)
PAGE_SIZES = (10, 50)
LISTS = {
    "agents": "/api/v1/agents/",
    "tasks": "/api/v1/tasks/",
    "approvals": "/api/v1/hitl/",
    "audit": "/api/v1/governance/audit/",
}


def _copies(model: Any, template: Any, count: int, **vary: Any) -> None:
    """``count`` copies of ``template`` (its concrete columns but the primary key), with the
    columns in ``vary`` given as functions of the copy's number."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    base = {f.attname: getattr(template, f.attname) for f in fields}
    rows = [model(**{**base, **{k: fn(n) for k, fn in vary.items()}}) for n in range(count)]
    model.objects.bulk_create(rows, batch_size=2_000)


def setup(rows: int) -> tuple[Any, str]:
    """The tenant with ``rows`` agents, tasks, approval requests and audit events; its
    admin's API token."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from agents.engine import advance
    from agents.models import Agent, Task
    from agents.services import agent_create, task_submit
    from config.connection import connection
    from governance.actors import Actor
    from governance.services import audit_record
    from governance.tokens import token_issue
    from hitl.models import ApprovalRequest
    from tenants.services import provision_request_build, spare_pool_fill, tenant_provision

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    spare_pool_fill(size=1)
    result = tenant_provision(
        request=provision_request_build(
            name="Bench API",
            domain=TENANT_DOMAIN,
            tier="enterprise",
            admin_email=f"admin@{TENANT_DOMAIN}",
            admin_password=PASSWORD,
        )
    )
    tenant = result.tenant
    tenant.limit_overrides = {"requests_per_minute": 1_000_000}  # measured, not refused
    tenant.save(update_fields=["limit_overrides"])
    connection.set_tenant(tenant)
    agent = agent_create(name="refunds", blueprint="resolution", privilege_ceiling=3)
    task = task_submit(agent_id=agent.pk, input=REFUND_TICKET)
    for _ in range(20):
        task = Task.objects.get(pk=task.pk)
        if ApprovalRequest.objects.filter(task=task).exists() or task.state in ("verified", "failed", "escalated"):
            break
        advance(task_id=task.pk, attempt=task.attempt)
    _copies(Agent, agent, rows - 1, name=lambda n: f"agent-{n:05d}")
    _copies(Task, Task.objects.get(pk=task.pk), rows - 1)
    approval = ApprovalRequest.objects.filter(task=task).first()
    if approval is not None:
        task_ids = list(Task.objects.exclude(pk=task.pk).values_list("pk", flat=True)[: rows - 1])
        _copies(ApprovalRequest, approval, len(task_ids), task_id=lambda n: task_ids[n])
    for n in range(rows):
        audit_record(actor=Actor.system("bench"), verb="bench.recorded", target_type="bench", target_id=n)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    admin = User.objects.get(username=f"admin@{TENANT_DOMAIN}")
    return tenant, token_issue(user=admin, name="bench").secret


def timed(runs: int, call: Any) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows a table; finishes in under a minute")
    parser.add_argument("--db-name", default="vigil_bench_api", help="scratch database (must start with vigil_bench)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database at the end")
    parser.add_argument("--lock-wait", type=float, default=600, help="seconds to wait for another benchmark")
    args = parser.parse_args(argv)
    if not BENCH_DB_RE.match(args.db_name):
        parser.error("--db-name must match vigil_bench[a-z0-9_]*")
    rows = 2_000 if args.quick else 10_000
    runs = 30 if args.quick else 200

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
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-api-"))
    private_redis = None
    try:
        db.create()
        private_redis = PrivateRedis(workdir)
        os.environ.update({"REDIS_URL": private_redis.url, "CELERY_BROKER_URL": private_redis.url})
        import django

        django.setup()
        from django.db import connection as db_connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext
        from django.urls import Resolver404, resolve
        from rest_framework.pagination import PageNumberPagination

        from config.connection import connection
        from governance import throttles
        from tenants.selectors import tenant_limits

        say(f"== Vigil benchmark: API lists and throttle ({'quick' if args.quick else 'full'}) ==")
        say(f"python {platform.python_version()}, {os.cpu_count()} cores")
        say(f"{rows} rows per table, {runs} requests per measurement")
        started = time.perf_counter()
        tenant, token = setup(rows)
        say(f"setup: {time.perf_counter() - started:.1f} s")
        client = Client(HTTP_HOST=TENANT_DOMAIN, HTTP_AUTHORIZATION=f"Bearer {token}")

        def get(path: str) -> int:
            db_connection.queries_log.clear()  # the log keeps 9,000 queries; counting needs room
            with CaptureQueriesContext(db_connection) as queries:
                response = client.get(path)
            connection.set_tenant(tenant)
            assert response.status_code == 200, (path, response.status_code, response.content[:200])
            return len(queries)

        lists = {}
        connection.set_tenant(tenant)
        for name, path in LISTS.items():
            try:
                resolve(path, urlconf="config.urls_tenant")
            except Resolver404:
                say(f"{name}: {path} is not routed here; skipped")
                continue
            lists[name] = path
        baseline = timed(runs, lambda: get("/api/v1/auth/me/"))
        p50s, p95s, most_queries = [], [], 0
        say(f"baseline: GET /api/v1/auth/me/                    p50 {statistics.median(baseline):7.2f} ms")
        for name, path in lists.items():
            for size in PAGE_SIZES:
                # The API takes no page size from the client; the setting's is read into
                # the paginator class when it is defined.
                PageNumberPagination.page_size = size
                url = path
                get(url)  # warm-up
                queries = max(get(url) for _ in range(3))
                samples = timed(runs, lambda url=url: get(url))
                p50s.append(statistics.median(samples))
                p95s.append(pct(samples, 95))
                most_queries = max(most_queries, queries)
                say(
                    f"{name:9s} page {size:2d}: p50 {p50s[-1]:7.2f} ms  p95 {p95s[-1]:7.2f} ms  "
                    f"{queries} queries  ({p50s[-1] / statistics.median(baseline):.1f}x baseline)"
                )
        redis_client = throttles._redis()
        ping = timed(runs * 5, redis_client.ping)
        throttle = timed(
            runs * 5,
            lambda: (throttles.request_counted(schema=tenant.schema_name), tenant_limits(tenant=tenant)),
        )
        results = {
            "list_p50_ms": round(max(p50s), 2),
            "list_p95_ms": round(max(p95s), 2),
            "max_queries": most_queries,
            "throttle_overhead_ms": round(statistics.median(throttle), 3),
            "baseline_me_p50_ms": round(statistics.median(baseline), 2),
            "redis_ping_p50_ms": round(statistics.median(ping), 3),
        }
        say(
            f"throttle per request p50 {results['throttle_overhead_ms']:.3f} ms "
            f"(a bare Redis PING: {results['redis_ping_p50_ms']:.3f} ms, "
            f"{results['throttle_overhead_ms'] / results['redis_ping_p50_ms']:.1f}x)"
        )
        say(f"slowest list p50 {results['list_p50_ms']} ms, p95 {results['list_p95_ms']} ms (worst endpoint and size)")
        for key, target in TARGETS.items():
            say(f"target {key} <= {target}: {'met' if results[key] <= target else 'MISSED'}")
        print(json.dumps({**results, "rows": rows, "lists": sorted(lists), "quick": args.quick}))
        return 0
    finally:
        if private_redis is not None:
            private_redis.stop()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            db.drop()
        db.close()


if __name__ == "__main__":
    raise SystemExit(main())
