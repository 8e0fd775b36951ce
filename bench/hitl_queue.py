"""Benchmark: the approval queue with many pending requests and 50 reviewers in one tenant.

    .venv/bin/python bench/hitl_queue.py [--quick] [--keep-db]

Runs against the PostgreSQL of settings.DATABASE_URL in a database of its own,
``vigil_bench_queue``, created at the start and dropped at the end, and a private
``redis-server`` (live events), started and stopped here. One benchmark per server at a time
(the advisory lock of bench/benchlib.py).

Setup: one tenant, one agent, 100,000 open requests (10,000 with ``--quick``) of mixed
priorities and deadlines on as many parked tasks (inserted in bulk), 50 reviewers with
profiles, a share of the requests already assigned to them.

What is measured, in this process (django.test.Client, no network), p95 over the runs:

* the admin's "My queue" page of a reviewer (render included), and the API's first page of
  ``GET /api/v1/hitl/queue/`` (serialization included);
* baseline: the admin's plain list of approval requests (Django's changelist), first page;
* auto-assignment of one waiting request (``hitl.assignment.approval_assign``: the locked
  pick, the counter, the history row, the audit event), each request once.

Targets: p95 < 100 ms for the pages, < 20 ms for an assignment. The last line printed is one
JSON object with ``queue_page_p95_ms``, ``queue_api_p95_ms`` and ``assign_p95_ms``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where this module would
# hide the standard library's ``queue`` (which Celery imports).
HERE, ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench.benchlib import pct, say, scratch_django, scratch_options, tenant_provisioned, timed  # noqa: E402

TARGETS = {"queue_page_p95_ms": 100.0, "queue_api_p95_ms": 100.0, "assign_p95_ms": 20.0}
TENANT_DOMAIN = "queue.bench.localhost"
PASSWORD = "bench-queue-pass-9"  # noqa: S105  (the scratch tenant's users, dropped with the database)
REVIEWERS = 50


def setup(requests: int) -> tuple[Any, list[Any]]:
    """The tenant, its agent, ``requests`` open requests on parked tasks, 50 reviewers."""
    from django.contrib.auth.models import Group, User

    from agents.services import agent_create
    from config.connection import connection
    from hitl.models import ReviewerProfile

    tenant = tenant_provisioned(name="Bench queue", domain=TENANT_DOMAIN, password=PASSWORD)
    agent = agent_create(name="refunds", blueprint="resolution", privilege_ceiling=3)
    group = Group.objects.get(name="reviewer")
    reviewers = []
    for n in range(REVIEWERS):
        user = User.objects.create_user(f"r{n}@{TENANT_DOMAIN}", f"r{n}@{TENANT_DOMAIN}", PASSWORD, is_staff=True)
        user.groups.add(group)
        ReviewerProfile.objects.create(user=user, capacity=30_000)
        reviewers.append(user)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO agents_task (agent_id, input, state, priority, attempt, retry_count, last_error,"
            " correlation_id, context, agent_version, created_at, updated_at)"
            " SELECT %s, '{}'::jsonb, 'awaiting_approval', 1 + n %% 4, 1, 0, '', '', '{}'::jsonb, 1, now(), now()"
            " FROM generate_series(1, %s) AS n",
            [agent.pk, requests],
        )
        # A fifth assigned, spread over the reviewers; the rest waiting.
        cursor.execute(
            "INSERT INTO hitl_approvalrequest (task_id, step_index, tool, arguments, action_hash, privilege_level,"
            " reasoning, required_role, status, priority, due_at, remind_at, assignee_id, assigned_at,"
            " escalation_level, evidence, evidence_hash, original_hash, decision_note, created_at, quorum, shadow)"
            ' SELECT t.id, 2, \'issue_refund\', \'{"order_id": "AB1234", "amount": 25.0, "currency": "EUR"}\','
            " repeat('a', 64), 3, 'refund', 'reviewer',"
            " CASE WHEN t.id %% 5 = 0 THEN 'assigned' ELSE 'pending' END, t.priority,"
            " now() + (t.id %% 1440) * interval '1 minute', now() + (t.id %% 720) * interval '1 minute',"
            " CASE WHEN t.id %% 5 = 0 THEN (SELECT id FROM auth_user WHERE username = 'r' || (t.id %% %s)::text || %s)"
            " END, CASE WHEN t.id %% 5 = 0 THEN now() END, 0, '{}'::jsonb, '', '', '', now(), 1, '[]'::jsonb"
            " FROM agents_task t WHERE t.agent_id = %s",
            [REVIEWERS, f"@{TENANT_DOMAIN}", agent.pk],
        )
        cursor.execute(
            "UPDATE hitl_reviewerprofile p SET open_count = (SELECT count(*) FROM hitl_approvalrequest a"
            " WHERE a.assignee_id = p.user_id AND a.status = 'assigned')"
        )
        cursor.execute("ANALYZE")
    return tenant, reviewers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 requests; finishes in under a minute")
    scratch_options(parser, db_name="vigil_bench_queue")
    args = parser.parse_args(argv)
    requests = 10_000 if args.quick else 100_000
    runs = 50 if args.quick else 200

    with scratch_django(args, prefix="vigil-bench-queue-"):
        from django.test import Client

        from config.connection import connection
        from hitl.assignment import approval_assign
        from hitl.models import ApprovalRequest

        say(f"== Vigil benchmark: approval queue ({'quick' if args.quick else 'full'}) ==")
        say(f"python {platform.python_version()}, {os.cpu_count()} cores")
        say(f"{requests} open requests, {REVIEWERS} reviewers")
        started = time.perf_counter()
        tenant, reviewers = setup(requests)
        say(f"setup: {time.perf_counter() - started:.1f} s")
        client = Client(HTTP_HOST=TENANT_DOMAIN)
        client.force_login(reviewers[7])

        def get(path: str) -> None:
            response = client.get(path)
            connection.set_tenant(tenant)
            assert response.status_code == 200, (path, response.status_code)

        for path in ("/admin/hitl/approvalrequest/queue/", "/api/v1/hitl/queue/", "/admin/hitl/approvalrequest/"):
            get(path)  # warm-up
        baseline = timed(runs, lambda: get("/admin/hitl/approvalrequest/"))
        page = timed(runs, lambda: get("/admin/hitl/approvalrequest/queue/"))
        api = timed(runs, lambda: get("/api/v1/hitl/queue/?assignee=me"))
        connection.set_tenant(tenant)
        waiting = list(
            ApprovalRequest.objects.filter(status="pending")
            .order_by("-priority", "due_at")
            .values_list("pk", flat=True)[: runs + 1]
        )
        approval_assign(approval_id=waiting.pop())  # warm-up
        assign = [timed(1, lambda pk=pk: approval_assign(approval_id=pk))[0] for pk in waiting]
        results = {
            "queue_page_p95_ms": round(pct(page, 95), 2),
            "queue_api_p95_ms": round(pct(api, 95), 2),
            "assign_p95_ms": round(pct(assign, 95), 2),
            "changelist_p95_ms": round(pct(baseline, 95), 2),
        }
        say(f"baseline: admin changelist, first page     p95 {results['changelist_p95_ms']:8.2f} ms")
        say(f"My queue page (admin)                      p95 {results['queue_page_p95_ms']:8.2f} ms")
        say(f"API first page (assignee=me)               p95 {results['queue_api_p95_ms']:8.2f} ms")
        say(f"auto-assign one request                    p95 {results['assign_p95_ms']:8.2f} ms")
        say(f"My queue / changelist: {results['queue_page_p95_ms'] / results['changelist_p95_ms']:.2f}x")
        for key, target in TARGETS.items():
            say(f"target {key} < {target} ms: {'met' if results[key] < target else 'MISSED'}")
        print(json.dumps({**results, "requests": requests, "reviewers": REVIEWERS, "quick": args.quick}))
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
