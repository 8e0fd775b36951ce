"""Benchmark: commit -> websocket frame on the live stream, at 1 (the baseline), 50 and 500
connected clients.

    .venv/bin/python bench/live.py [--quick] [--keep-db]

Runs against the PostgreSQL of settings.DATABASE_URL in a database of its own,
``vigil_bench_live``, created at the start and dropped at the end, and a private
``redis-server`` on a free port (channel layer, sequence numbers, tickets), started and stopped
here. One benchmark per server at a time (the advisory lock of bench/benchlib.py).

Setup: shared migrations, one spare, one tenant with its admin and an API token; the web server
as in production: uvicorn with 2 worker processes serving config.asgi. Every client asks the
API for a ticket and opens ``/ws/live/`` with it; the sockets are spread over both processes.

What is measured:

* latency: this process publishes an event through ``agents.events.publish`` inside a
  transaction, one every 20 ms (every 250 ms at 500 clients: one every 20 ms would be 25,000
  frames/s, past what 2 cores deliver, and the figure would measure the queue); from just
  before COMMIT (after which the event is numbered and sent to the group) to the frame's
  arrival at each client; p50 / p99 over every (event, client) pair. All clients run in one
  asyncio loop of this process, on the same clock; their own parsing is inside the figure.
* sustained events/s: a burst of events published back to back at 50 clients (and a smaller
  one at 500); events / (first publish -> the last client's last frame), and frames/s.
* approve -> peer: one reviewer approves open requests one at a time through
  ``POST /api/v1/hitl/<id>/approve/`` while a second reviewer's socket is open (next to 49
  other clients); from just before the HTTP request to the ``approval.decided`` frame of that
  request on the second reviewer's socket (``approve_to_peer_p99_ms``). The request, its
  transaction and the API's answer are inside the figure.

The last line printed is one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchlib import BENCH_DB_RE, BenchDatabase, db_urls, p50, pct, say  # noqa: E402
from bench.steps import PrivateRedis  # noqa: E402

TARGETS = {"p99_ms_50_clients": 50.0, "p99_ms_500_clients": 250.0, "approve_to_peer_p99_ms": 50.0}
TENANT_DOMAIN = "live.bench.localhost"
REVIEWER = f"reviewer@{TENANT_DOMAIN}"
PASSWORD = "bench-live-pass-9"  # noqa: S105  (the scratch tenant's admin, dropped with the database)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def setup_tenant() -> tuple[Any, str, str]:
    """Shared migrations, one spare, the tenant; its admin's API token, and a reviewer (who
    watches the approve -> peer run)."""
    from django.core.management import call_command
    from django.db import transaction

    from config.connection import connection
    from governance.tokens import token_issue
    from tenants.services import provision_request_build, spare_pool_fill, tenant_provision

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    spare_pool_fill(size=1)
    result = tenant_provision(
        request=provision_request_build(
            name="Bench live",
            domain=TENANT_DOMAIN,
            tier="enterprise",
            admin_email=f"admin@{TENANT_DOMAIN}",
            admin_password=PASSWORD,
        )
    )
    connection.set_tenant(result.tenant)
    from django.contrib.auth.models import Group, User

    reviewer = User.objects.create_user(REVIEWER, REVIEWER, PASSWORD)
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    with transaction.atomic():
        token = token_issue(user=User.objects.get(username=result.admin_username), name="bench")
        reviewer_token = token_issue(user=reviewer, name="bench")
    connection.set_schema_to_public()
    return result.tenant, token.secret, reviewer_token.secret


def open_requests(count: int) -> list[tuple[int, str]]:
    """``count`` open approval requests of one agent, as the engine opens them (its task parked
    at the gate), without running the engine: (id, action hash) each."""
    from django.db import transaction

    from agents.models import Task, TaskState
    from agents.services import agent_create
    from config.connection import connection
    from governance.actors import Actor
    from hitl.services import approval_open
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(domains__domain=TENANT_DOMAIN))
    agent = agent_create(name="bench-refunds", blueprint="resolution", privilege_ceiling=3)
    opened = []
    for n in range(count):
        with transaction.atomic():
            task = Task.objects.create(agent=agent, input={"text": f"refund {n}"}, state=TaskState.AWAITING_APPROVAL)
            request = approval_open(
                task=task,
                step_index=2,
                tool="issue_refund",
                level=3,
                arguments={"order_id": f"AB{n:04d}", "amount": 25, "currency": "EUR", "reason": "bench"},
                reasoning="bench",
                required_role="reviewer",
                actor=Actor.system("bench"),
            )
        opened.append((request.pk, request.action_hash))
    connection.set_schema_to_public()
    return opened


def _post(port: int, path: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Host": TENANT_DOMAIN, "Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  (http URL built here)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def approve_run(clients: Clients, port: int, token: str, requests: list[tuple[int, str]]) -> dict[str, Any]:
    """Approve each request through the API, one at a time; the latency to the decision's frame
    on the peer's socket (client 0, the reviewer)."""
    sent: dict[int, float] = {}
    api_ms = []
    for approval_id, action_hash in requests:
        sent[approval_id] = time.time()
        status, body = _post(port, f"/api/v1/hitl/{approval_id}/approve/", token, {"action_hash": action_hash})
        api_ms.append((time.time() - sent[approval_id]) * 1000)
        if status != 200:
            raise SystemExit(f"approving request {approval_id} answered {status}: {body!r}")
        deadline = time.monotonic() + 10
        while approval_id not in clients.decided and time.monotonic() < deadline:
            time.sleep(0.001)
    lat = [(clients.decided[a] - sent[a]) * 1000 for a in sent if a in clients.decided]
    return {
        "requests": len(requests),
        "p50_ms": round(p50(lat), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "max_ms": round(max(lat), 2),
        "api_p50_ms": round(p50(api_ms), 2),
        "missing_frames": len(requests) - len(lat),
    }


class Server:
    """uvicorn with 2 worker processes on the bench database."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "2",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"web server did not start; see {log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


class Clients:
    """``n`` websocket clients in one asyncio loop on a thread of their own; each records
    (event number, arrival time) for every ``bench.tick`` frame."""

    def __init__(self, port: int, token: str, n: int, *, first_token: str | None = None) -> None:
        self.port, self.token, self.n = port, token, n
        self.first_token = first_token or token
        self.received: list[dict[int, float]] = [{} for _ in range(n)]
        # Client 0's ``approval.decided`` frames: approval id -> arrival time.
        self.decided: dict[int, float] = {}
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(timeout=120):
            raise SystemExit(f"{n} clients did not connect in 120 s")
        if self.error is not None:
            raise SystemExit(f"clients failed: {self.error!r}")

    def _ticket(self, token: str) -> list[str]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/live/ticket/",
            method="POST",
            headers={"Host": TENANT_DOMAIN, "Authorization": f"Token {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  (http URL built here)
            return list(json.loads(response.read())["subprotocols"])

    async def _client(self, index: int, opened: asyncio.Event, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        protocols = await asyncio.to_thread(self._ticket, self.first_token if index == 0 else self.token)
        sock = socket.create_connection(("127.0.0.1", self.port))
        async with connect(
            f"ws://{TENANT_DOMAIN}/ws/live/",
            sock=sock,
            subprotocols=protocols,  # type: ignore[arg-type]
            open_timeout=60,
            max_queue=None,
        ) as ws:
            opened.set()
            mine = self.received[index]
            reader = asyncio.ensure_future(self._read(ws, mine, self.decided if index == 0 else None))
            await stop.wait()
            reader.cancel()

    @staticmethod
    async def _read(ws: Any, mine: dict[int, float], decided: dict[int, float] | None) -> None:
        async for raw in ws:
            now = time.time()
            frame = json.loads(raw)
            if frame.get("type") == "bench.tick":
                mine[int(frame["n"])] = now
            elif decided is not None and frame.get("type") == "approval.decided":
                decided[int(frame["approval_id"])] = now

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.stop_event = asyncio.Event()
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the main thread
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        opened = [asyncio.Event() for _ in range(self.n)]
        tasks = []
        for index in range(self.n):
            tasks.append(asyncio.ensure_future(self._client(index, opened[index], self.stop_event)))
            if index % 25 == 24:
                await asyncio.sleep(0.05)  # do not storm the server's accept queue
        await asyncio.gather(*(event.wait() for event in opened))
        self.ready.set()
        await asyncio.gather(*tasks)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)


def publish_events(first: int, count: int, *, interval_s: float) -> dict[int, float]:
    """Publish ``count`` events numbered from ``first``; the time just before each COMMIT."""
    from django.db import transaction

    from agents.events import publish
    from config.connection import connection
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(domains__domain=TENANT_DOMAIN))
    sent: dict[int, float] = {}
    for n in range(first, first + count):
        with transaction.atomic():
            publish("bench.tick", n=n)
            sent[n] = time.time()
        if interval_s:
            time.sleep(interval_s)
    return sent


def wait_all(clients: Clients, numbers: range, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(all(n in got for n in numbers) for got in clients.received):
            return True
        time.sleep(0.02)
    return False


def latency_run(clients: Clients, first: int, events: int, *, interval_s: float) -> dict[str, Any]:
    sent = publish_events(first, events, interval_s=interval_s)
    numbers = range(first, first + events)
    complete = wait_all(clients, numbers, timeout=30)
    lat = [(got[n] - sent[n]) * 1000 for got in clients.received for n in numbers if n in got]
    if os.environ.get("BENCH_LIVE_TRACE"):
        worst = [max((got.get(n, 0) - sent[n]) * 1000 for got in clients.received) for n in numbers]
        say("  worst per event (ms): " + " ".join(f"{w:.0f}" for w in worst))
    missing = clients.n * events - len(lat)
    return {
        "clients": clients.n,
        "events": events,
        "interval_ms": interval_s * 1000,
        "p50_ms": round(p50(lat), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "max_ms": round(max(lat), 2),
        "missing_frames": missing,
        "complete": complete,
    }


def throughput_run(clients: Clients, first: int, events: int) -> dict[str, Any]:
    start = time.time()
    publish_events(first, events, interval_s=0)
    numbers = range(first, first + events)
    wait_all(clients, numbers, timeout=60)
    last = max((got.get(n, 0.0) for got in clients.received for n in numbers), default=start)
    delivered = sum(1 for got in clients.received for n in numbers if n in got)
    return {
        "clients": clients.n,
        "events": events,
        "seconds": round(last - start, 3),
        "events_per_s": round(events / (last - start), 1) if last > start else 0.0,
        "frames_per_s": round(delivered / (last - start), 1) if last > start else 0.0,
        "missing_frames": clients.n * events - delivered,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events; finishes in under a minute")
    parser.add_argument("--db-name", default="vigil_bench_live", help="scratch database (must start with vigil_bench)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database at the end")
    parser.add_argument("--lock-wait", type=float, default=600, help="seconds to wait for another benchmark")
    args = parser.parse_args(argv)
    if not BENCH_DB_RE.match(args.db_name):
        parser.error("--db-name must match vigil_bench[a-z0-9_]*")
    events = 40 if args.quick else 200
    approvals_count = 40 if args.quick else 200
    burst = 200 if args.quick else 1000

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
    started = time.perf_counter()
    db = BenchDatabase(maint_url, args.db_name, args.lock_wait)
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-live-"))
    private_redis = server = None
    results: dict[str, Any] = {}
    try:
        db.create()
        private_redis = PrivateRedis(workdir)
        os.environ.update({"REDIS_URL": private_redis.url, "CELERY_BROKER_URL": private_redis.url})
        import django

        django.setup()
        say(f"== Vigil benchmark: live stream ({'quick' if args.quick else 'full'}) ==")
        say(f"python {platform.python_version()}, {os.cpu_count()} cores, redis {private_redis.version}")
        _, token, reviewer_token = setup_tenant()
        approvals = open_requests(approvals_count + 5)
        server = Server({**os.environ, "PYTHONUNBUFFERED": "1"}, workdir / "web.log")
        say(f"web: uvicorn, 2 worker processes, port {server.port}")
        first = 1
        for n in (1, 50, 500):
            clients = Clients(server.port, token, n)
            try:
                interval = 0.25 if n >= 500 else 0.02
                latency_run(clients, first, 5, interval_s=interval)  # warm-up: the publisher's first loop
                first += 5
                result = latency_run(clients, first, events, interval_s=interval)
                first += events
                results[f"latency_{n}"] = result
                say(
                    f"{n:>4} clients: commit -> frame p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
                    f"max {result['max_ms']:.2f} ms ({result['events']} events every {interval * 1000:.0f} ms, "
                    f"{result['missing_frames']} missing)"
                )
                if n > 1:
                    size = burst if n == 50 else burst // 10
                    burst_result = throughput_run(clients, first, size)
                    first += size
                    results[f"burst_{n}"] = burst_result
                    say(
                        f"{n:>4} clients, {size} events back to back: {burst_result['events_per_s']:.0f} events/s "
                        f"({burst_result['frames_per_s']:.0f} frames/s, {burst_result['missing_frames']} missing)"
                    )
            finally:
                clients.close()
        clients = Clients(server.port, token, 50, first_token=reviewer_token)
        try:
            approve_run(clients, server.port, token, approvals[:5])  # warm-up
            peer = approve_run(clients, server.port, token, approvals[5:])
        finally:
            clients.close()
        results["approve_to_peer"] = peer
        say(
            f"approve -> peer's frame (50 clients): p50 {peer['p50_ms']:.2f} ms, p99 {peer['p99_ms']:.2f} ms, "
            f"max {peer['max_ms']:.2f} ms ({peer['requests']} approvals, the API answered in p50 "
            f"{peer['api_p50_ms']:.2f} ms, {peer['missing_frames']} missing)"
        )
        baseline = results["latency_1"]["p99_ms"]
        for n in (50, 500):
            ratio = results[f"latency_{n}"]["p99_ms"] / baseline if baseline else 0.0
            say(f"p99 at {n} clients / p99 at 1 client: {ratio:.1f}x")
        p99_50, p99_500 = results["latency_50"]["p99_ms"], results["latency_500"]["p99_ms"]
        summary = {
            "p99_ms_1_client": baseline,
            "p99_ms_50_clients": p99_50,
            "p99_ms_500_clients": p99_500,
            "p50_ms_50_clients": results["latency_50"]["p50_ms"],
            "p50_ms_500_clients": results["latency_500"]["p50_ms"],
            "events_per_s": results["burst_50"]["events_per_s"],
            "frames_per_s_500_clients": results["burst_500"]["frames_per_s"],
            "ratio_p99_500_vs_1": round(p99_500 / baseline, 2) if baseline else None,
            "approve_to_peer_p99_ms": peer["p99_ms"],
            "approve_to_peer_p50_ms": peer["p50_ms"],
            "met": {
                "p99_ms_50_clients": p99_50 <= TARGETS["p99_ms_50_clients"],
                "p99_ms_500_clients": p99_500 <= TARGETS["p99_ms_500_clients"],
                "approve_to_peer_p99_ms": peer["p99_ms"] <= TARGETS["approve_to_peer_p99_ms"],
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
        say(json.dumps(summary))
        return 0
    finally:
        if server is not None:
            server.stop()
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        if private_redis is not None:
            private_redis.stop()
        if not args.keep_db:
            db.drop()
        db.close()


if __name__ == "__main__":
    sys.exit(main())
