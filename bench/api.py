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
  p50 and p95 latency, the CPU time of this process per request (p50: the part that does not
  depend on how busy the machine is), and the most statements one request sent to the
  database (every statement, ``SET search_path`` and prepared ones included);
* baseline: ``GET /api/v1/auth/me/`` (authentication, throttle and middleware only);
* the throttle's work per authenticated request (the tenant's limit, the counter read before
  the view and counted after it), p50, against a bare Redis PING in the same run;
* the tenant of the request's host, remembered by the process or read from the database, and
  the status of the first request after the tenant is suspended (403: refused at once).

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
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench.benchlib import pct, say, scratch_django, scratch_options, tenant_provisioned, timed  # noqa: E402

REFUND_TICKET = {
    "text": "Please refund 25 EUR for order #AB1234, it arrived broken",
    "customer_email": "dana@example.com",
    "subject": "Broken parcel",
}
TARGETS = {"list_p50_ms": 15.0, "max_queries": 4, "throttle_overhead_ms": 1.0}
TENANT_DOMAIN = "api.bench.localhost"
PASSWORD = "bench-api-pass-9"  # noqa: S105  (the scratch tenant's admin, dropped with the database)
PAGE_SIZES = (10, 50)
# The paginated lists take their page size from the setting (read into the paginator class);
# the audit list, cursor-paginated, from its ``limit`` parameter.
LISTS = {
    "agents": "/api/v1/agents/",
    "tasks": "/api/v1/tasks/",
    "approvals": "/api/v1/hitl/",
    "audit": "/api/v1/governance/audit/?limit={size}",
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

    from agents.engine import advance
    from agents.models import Agent, Task
    from agents.services import agent_create, task_submit
    from config.connection import connection
    from governance.actors import Actor
    from governance.services import audit_record
    from governance.tokens import token_issue
    from hitl.models import ApprovalRequest

    tenant = tenant_provisioned(name="Bench API", domain=TENANT_DOMAIN, password=PASSWORD)
    tenant.limit_overrides = {"requests_per_minute": 1_000_000}  # measured, not refused
    tenant.save(update_fields=["limit_overrides"])
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows a table; finishes in under a minute")
    scratch_options(parser, db_name="vigil_bench_api")
    args = parser.parse_args(argv)
    rows = 2_000 if args.quick else 10_000
    runs = 30 if args.quick else 200

    with scratch_django(args, prefix="vigil-bench-api-"):
        from django.db import connection as db_connection
        from django.test import Client
        from django.urls import Resolver404, resolve
        from rest_framework.settings import api_settings

        from config.connection import connection
        from governance import throttles
        from governance.actors import Actor
        from tenants.selectors import TENANT_CACHE_SECONDS, tenant_cache_clear, tenant_for_host, tenant_limits
        from tenants.services import tenant_resume, tenant_suspend

        say(f"== Vigil benchmark: API lists and throttle ({'quick' if args.quick else 'full'}) ==")
        say(f"python {platform.python_version()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        say(f"{rows} rows per table, {runs} requests per measurement")
        started = time.perf_counter()
        tenant, token = setup(rows)
        say(f"setup: {time.perf_counter() - started:.1f} s")
        client = Client(HTTP_HOST=TENANT_DOMAIN, HTTP_AUTHORIZATION=f"Bearer {token}")
        paginator: Any = api_settings.DEFAULT_PAGINATION_CLASS
        statements: list[str] = []

        def counted(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            # Every statement sent on the connection, the prepared ones (config.db) included.
            statements.append(sql)
            return execute(sql, params, many, context)

        def get(path: str) -> int:
            """GET ``path``; the statements it sent."""
            statements.clear()
            response = client.get(path)
            connection.set_tenant(tenant)
            assert response.status_code == 200, (path, response.status_code, response.content[:200])
            return len(statements)

        def cpu_ms(path: str) -> float:
            start = time.thread_time()
            get(path)
            return (time.thread_time() - start) * 1000

        lists = {}
        connection.set_tenant(tenant)
        for name, path in LISTS.items():
            try:
                resolve(path.partition("?")[0], urlconf="config.urls_tenant")
            except Resolver404:
                say(f"{name}: {path} is not routed here; skipped")
                continue
            lists[name] = path
        p50s, p95s, most_queries = [], [], 0
        with db_connection.execute_wrapper(counted):
            get("/api/v1/auth/me/")  # warm-up
            baseline = timed(runs, lambda: get("/api/v1/auth/me/"))
            say(
                f"baseline: GET /api/v1/auth/me/           p50 {statistics.median(baseline):7.2f} ms"
                f"                 {get('/api/v1/auth/me/')} queries"
            )
            for name, path in lists.items():
                for size in PAGE_SIZES:
                    paginator.page_size = size
                    url = path.format(size=size)
                    get(url)  # warm-up
                    queries = max(get(url) for _ in range(3))
                    samples = timed(runs, lambda url=url: get(url))
                    cpu = statistics.median(cpu_ms(url) for _ in range(max(10, runs // 5)))
                    p50s.append(statistics.median(samples))
                    p95s.append(pct(samples, 95))
                    most_queries = max(most_queries, queries)
                    say(
                        f"{name:9s} page {size:2d}: p50 {p50s[-1]:7.2f} ms  p95 {p95s[-1]:7.2f} ms  "
                        f"cpu {cpu:6.2f} ms  {queries} queries  "
                        f"({p50s[-1] / statistics.median(baseline):.1f}x baseline)"
                    )
        # The throttle's work on an authenticated request: the tenant's limit, the counter read
        # before the view and counted after it (two Redis round trips).
        redis_client = throttles._redis()
        ping = timed(runs * 5, redis_client.ping)
        throttle = timed(
            runs * 5,
            lambda: (
                tenant_limits(tenant=tenant),
                throttles.request_counted(schema=tenant.schema_name, count=False),
                throttles.request_counted(schema=tenant.schema_name),
            ),
        )
        # The tenant of the request's host: remembered (tenants.selectors), or read.
        cached = timed(runs * 5, lambda: tenant_for_host(hostname=TENANT_DOMAIN))

        def read_tenant() -> None:
            tenant_cache_clear()
            tenant_for_host(hostname=TENANT_DOMAIN)

        read = timed(runs, read_tenant)
        # A suspension through the service: refused on the very next request of this process.
        tenant_suspend(schema_name=tenant.schema_name, actor=Actor.operator("bench"))
        logging.getLogger("django.request").setLevel(logging.ERROR)  # the 403 is expected
        suspended_status = client.get("/api/v1/auth/me/").status_code
        tenant_resume(schema_name=tenant.schema_name, actor=Actor.operator("bench"))
        connection.set_tenant(tenant)
        results = {
            "list_p50_ms": round(max(p50s), 2),
            "list_p95_ms": round(max(p95s), 2),
            "max_queries": most_queries,
            "throttle_overhead_ms": round(statistics.median(throttle), 3),
            "baseline_me_p50_ms": round(statistics.median(baseline), 2),
            "redis_ping_p50_ms": round(statistics.median(ping), 3),
            "tenant_lookup_cached_ms": round(statistics.median(cached), 3),
            "tenant_lookup_read_ms": round(statistics.median(read), 3),
            "suspended_next_status": suspended_status,
        }
        say(
            f"throttle per request p50 {results['throttle_overhead_ms']:.3f} ms "
            f"(a bare Redis PING: {results['redis_ping_p50_ms']:.3f} ms, "
            f"{results['throttle_overhead_ms'] / results['redis_ping_p50_ms']:.1f}x)"
        )
        say(
            f"tenant of the host p50: remembered {results['tenant_lookup_cached_ms']:.3f} ms, "
            f"read from the database {results['tenant_lookup_read_ms']:.3f} ms (a query)"
        )
        say(
            f"a suspended tenant's next request: {suspended_status} "
            f"(other processes: within {TENANT_CACHE_SECONDS:.0f} s, the host lookup's cache)"
        )
        say(f"slowest list p50 {results['list_p50_ms']} ms, p95 {results['list_p95_ms']} ms (worst endpoint and size)")
        for key, target in TARGETS.items():
            say(f"target {key} <= {target}: {'met' if results[key] <= target else 'MISSED'}")
        print(json.dumps({**results, "rows": rows, "lists": sorted(lists), "quick": args.quick}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
