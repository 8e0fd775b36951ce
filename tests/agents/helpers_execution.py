"""Shared pieces of the execution tests (tests/agents/test_execution_*.py); no tests here.

The execution tests run real `celery worker` processes on the session's test database and
Redis db, with committed data (the ``committed`` fixture). Two ways to run a worker:

- the session's shared ``celery_worker``, for tests that only need *a* worker;
- ``only_our_workers`` + ``worker_start``: the shared worker is stopped for the module (and
  restarted after it), so the workers the test starts are the only consumers. Tests need this
  when they kill a worker, give it its own environment (an API key), or need a window in
  which nobody consumes the queue.

Which message did what is read from the worker's log: Celery logs every task's outcome as
``Task agents.advance_task[<message id>] succeeded in 0.01s: 'stale'``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import User

from agents.engine import advance
from agents.models import Agent, Effect, OutboxMessage, Task
from agents.services import agent_create, task_submit
from agents.tasks import advance_task
from config.connection import connection
from governance.models import AuditEvent
from tenants.models import Tenant
from tests.conftest import BILLING_TICKET, WorkerHandle

FINAL = frozenset({"verified", "escalated", "cancelled"})

T = TypeVar("T")
StartWorker = Callable[..., WorkerHandle]  # the worker_start fixture: (env=..., concurrency=...) -> handle


# ------------------------------------------------------------------------------ waiting
def wait_until(
    check: Callable[[], T | Literal[False] | None], *, timeout: float = 20, what: str = "the condition"
) -> T:
    """Poll ``check`` every 50 ms until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_for_state(task_id: int, states: set[str] | frozenset[str], timeout: float = 20) -> Task:
    """The task, once its state is one of ``states`` (read in the connection's current schema)."""

    def reached() -> Task | None:
        task = Task.objects.get(pk=task_id)
        return task if task.state in states else None

    try:
        return wait_until(reached, timeout=timeout, what=f"task {task_id} to reach {sorted(states)}")
    except AssertionError:
        task = Task.objects.get(pk=task_id)
        raise AssertionError(
            f"task {task_id} stuck in {task.state} (attempt {task.attempt}, "
            f"retries {task.retry_count}, last error {task.last_error!r})"
        ) from None


# ------------------------------------------------------------------------------ tenants, cast, agents
def use_tenant(schema: str = "acme") -> Tenant:
    tenant = Tenant.objects.get(schema_name=schema)
    connection.set_tenant(tenant)
    return tenant


def user(username: str) -> User:
    """A user of the connection's current tenant."""
    return User.objects.get(username=username)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def resolution_agent(**settings_: Any) -> Agent:
    """A resolution agent allowed to propose refunds (issue_refund is level 3: needs a reviewer)."""
    return agent_create(name=unique("resolution"), blueprint="resolution", privilege_ceiling=3, **settings_)


def triage_agent(**settings_: Any) -> Agent:
    return agent_create(name=unique("triage"), blueprint="triage", **settings_)


def triage_task_after_first_step() -> Task:
    """A triage task whose first step (classify) ran in this process; its next message
    (send_reply, attempt 2) is on the queue."""
    task = task_submit(agent_name=triage_agent().name, input=BILLING_TICKET)
    assert advance_here(task.pk) == "stepped"
    stepped = Task.objects.get(pk=task.pk)
    assert (stepped.state, stepped.attempt, steps_of(stepped)) == ("in_progress", 2, [("classify", "record")])
    return stepped


def steps_of(task: Task) -> list[tuple[str, str]]:
    return [(s.action, s.decision) for s in task.steps.order_by("index")]


def transitions_of(task: Task) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in task.events.order_by("id")]


def outbox_kinds(task: Task) -> list[str]:
    return sorted(OutboxMessage.objects.filter(effect__task=task).values_list("kind", flat=True))


def effect_keys(task: Task) -> list[str]:
    return sorted(Effect.objects.filter(task=task).values_list("idempotency_key", flat=True))


def audit_verbs(*, target_type: str, target_id: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_type=target_type, target_id=str(target_id))
        .order_by("seq")
        .values_list("verb", flat=True)
    )


# ------------------------------------------------------------------------------ messages
def send_advance(*, task_id: int, attempt: int, schema: str | None = "acme") -> str:
    """Put an ``agents.advance_task`` message on the steps queue, as the engine's ``dispatch``
    does; returns its id. ``schema=None`` sends a message without a schema name (by task name:
    ``apply_async`` checks the signature on the client and would not send it)."""
    if schema is None:
        from config.celery import app

        return str(app.send_task(advance_task.name, kwargs={"task_id": task_id, "attempt": attempt}, queue="steps").id)
    return str(
        advance_task.apply_async(kwargs={"schema": schema, "task_id": task_id, "attempt": attempt}, queue="steps").id
    )


def advance_here(task_id: int) -> str:
    """Run the task's next step in this process (the connection's schema must be the task's),
    with the attempt that currently holds the lease, exactly as a worker would."""
    return advance(task_id=task_id, attempt=Task.objects.get(pk=task_id).attempt)


_OUTCOME = re.compile(
    r"Task agents\.advance_task\[(?P<id>[0-9a-f-]+)\] (?:succeeded in [0-9.e-]+s: '(?P<result>\w+)'"
    r"|(?P<rejected>reject) requeue|(?P<raised>raised))"
)


def outcome(worker: WorkerHandle, message_id: str, *, timeout: float = 20) -> str:
    """What the worker did with one message: the engine's answer ('stale', 'stepped', ...),
    'reject' (refused by TenantTask) or 'raised'."""

    def find() -> str | None:
        for match in _OUTCOME.finditer(worker.log_path.read_text(errors="replace")):
            if match["id"] == message_id:
                return match["result"] or match["rejected"] or match["raised"]
        return None

    return wait_until(find, timeout=timeout, what=f"message {message_id} in {worker.log_path}")


def broker_purge() -> int:
    """Drop every message waiting in the session's queues (no worker may be consuming)."""
    from django.conf import settings

    from config.celery import app

    # Every queue a route names, whether or not this process declared it (the engine's sends
    # skip the declaration), and Celery's default one.
    queues = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {app.conf.task_default_queue}
    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel  # kombu's virtual channel (the stubs know its base only)
        return sum(int(channel.queue_purge(queue) or 0) for queue in sorted(queues))


# ------------------------------------------------------------------------------ outside the app
def database_connect(*, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A connection of our own to the test database, outside Django (to hold locks, watch
    pg_stat_activity)."""
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=autocommit,
    )


@contextmanager
def audit_trail_locked(schema: str) -> Iterator[psycopg.Connection[Any]]:
    """Hold ``LOCK TABLE <schema>.governance_auditevent IN EXCLUSIVE MODE`` from a connection of
    our own. Reads go on, but a transaction that appends to that tenant's audit trail waits
    at its INSERT, with everything it wrote before (Effect, outbox, Step) still uncommitted.
    ``conn.rollback()`` releases the lock early; leaving the block always does."""
    conn = database_connect()
    try:
        conn.execute(f'LOCK TABLE "{schema}".governance_auditevent IN EXCLUSIVE MODE')
        yield conn
    finally:
        conn.rollback()
        conn.close()


# The audit append (lock, head read and INSERT) is one function call; it waits at its INSERT.
AUDIT_INSERT = "SELECT seq, hash FROM governance_audit_append%"
# A plain step (lease, effect, outbox, step, audit event) is one statement (agents.statements.STEP).
STEP_STATEMENT = "WITH claim AS (UPDATE agents_task SET attempt%"
# The engine claims the task row with a conditional UPDATE (attempt check + lease bump).
TASK_ROW_LOCK = "UPDATE agents_task SET attempt%"


def lock_waiters(query_like: str) -> list[int]:
    """PIDs of the test database's backends waiting for a lock in a statement LIKE
    ``query_like`` (read fresh each time: pg_stat_activity is a snapshot per transaction)."""
    with database_connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [query_like],
        ).fetchall()
    return [row[0] for row in rows]


def waiting_for(pid: int) -> str | None:
    """What backend ``pid`` waits for: 'relation' (a table lock, such as the audit trail we
    lock), 'transactionid' or 'tuple' (a row another transaction holds), or None."""
    with database_connect(autocommit=True) as conn:
        row = conn.execute(
            "SELECT wait_event FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'", [pid]
        ).fetchone()
    return row[0] if row else None


def backend_alive(pid: int) -> bool:
    with database_connect(autocommit=True) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone())


def holds_row_exclusive(pid: int, relation: str) -> bool:
    """Has backend ``pid`` written to ``relation`` ("schema.table") in its open transaction?"""
    with database_connect(autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = %s::regclass "
            "AND mode = 'RowExclusiveLock' AND granted",
            [pid, relation],
        ).fetchone()
    return bool(row and row[0])


def closed_port() -> socket.socket:
    """A socket bound to a free local port and not listening: connecting to it is refused for
    as long as the socket stays open (close it when done)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


# ------------------------------------------------------------------------------ an OpenAI-compatible stub
TRIAGE_OUTPUT: dict[str, Any] = {
    "category": "billing",
    "priority": "high",
    "confidence": 0.91,
    "clarification_needed": False,
    "summary": "Customer was charged twice for one invoice",
    "metadata": {
        "order_id": "AB1234",
        "amount": 49.9,
        "currency": "EUR",
        "email": "dana@example.com",
        "sentiment": "negative",
        "wants_refund": False,
    },
}
# gpt-4o-mini prices these at exactly 0.00036 USD (0.15 and 0.60 USD per million tokens).
STUB_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}


def chat_completion(content: str, *, model: str = "stub-model-1") -> dict[str, Any]:
    """A chat.completion body as the OpenAI API sends it."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "usage": STUB_USAGE,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": content, "refusal": None},
            }
        ],
    }


class OpenAIStub:
    """A local OpenAI-compatible endpoint (``POST /v1/chat/completions``) on 127.0.0.1, served
    by http.server in a thread. ``reply(body) -> (status, json)`` answers each request; the
    default answers a "triage" structured-output request with TRIAGE_OUTPUT. Every request
    is kept in ``requests`` (path, lower-cased headers, body)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]] = self.by_schema_name
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append(
                    {"path": self.path, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}}
                )
                status, payload = (
                    (404, {"error": {"message": f"no route {self.path}"}})
                    if self.path != "/v1/chat/completions"
                    else stub.reply(body)
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="openai-stub", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @staticmethod
    def by_schema_name(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("response_format", {}).get("json_schema", {}).get("name")
        if name == "triage":
            return 200, chat_completion(json.dumps(TRIAGE_OUTPUT))
        return 400, {"error": {"message": f"the stub has no answer for {name!r}", "type": "invalid_request_error"}}


@contextmanager
def openai_stub() -> Iterator[OpenAIStub]:
    stub = OpenAIStub()
    stub.thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def only_our_workers(celery_worker: WorkerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Stop the session's shared worker for this module, restart it afterwards: only the
    workers the module's tests start consume the session's queues."""
    celery_worker.stop()
    broker_purge()  # nothing the shared worker left unconsumed runs on ours
    try:
        yield
    finally:
        broker_purge()  # what our tests left behind (stale messages) is not the shared worker's business
        celery_worker.log_path = tmp_path_factory.mktemp("shared-worker") / "worker.log"
        celery_worker.start()


@pytest.fixture
def worker_settings(settings: Any, celery_env: dict[str, str]) -> None:
    """Steps run in this process use the workers' short ack deadline and backoff."""
    settings.TASK_ACK_TIMEOUT_SECONDS = int(celery_env["TASK_ACK_TIMEOUT_SECONDS"])
    settings.TASK_RETRY_BASE_DELAY = float(celery_env["TASK_RETRY_BASE_DELAY"])
    settings.TASK_RETRY_MAX_DELAY = float(celery_env["TASK_RETRY_MAX_DELAY"])


@pytest.fixture
def worker_start(only_our_workers: None, celery_env: dict[str, str], tmp_path: Path) -> Iterator[StartWorker]:
    """Start workers of our own (``worker_start(env={...}, concurrency=1)``); all of them are
    stopped when the test ends."""
    handles: list[WorkerHandle] = []

    def start(*, env: dict[str, str] | None = None, concurrency: int = 2) -> WorkerHandle:
        handle = WorkerHandle(env={**celery_env, **(env or {})}, log_path=tmp_path / f"worker-{len(handles)}.log")
        handles.append(handle)
        handle.start(concurrency=concurrency)
        return handle

    try:
        yield start
    finally:
        for handle in handles:
            handle.stop()
