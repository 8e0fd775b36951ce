"""While PostgreSQL is unreachable, the API answers 503 JSON with Retry-After, pages a plain
503, and /readyz a fast 503. The app runs in a process of its own whose DATABASE_URL names a
port where nothing listens, so the shared server keeps running."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

REQUESTS = """
import json, time
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="acme.localhost", raise_request_exception=False)
answers = {}
for path in ("/api/v1/agents/", "/api/v1/hitl/pending/", "/admin/", "/readyz"):
    started = time.monotonic()
    response = client.get(path)
    answers[path] = {"status": response.status_code, "type": response["Content-Type"],
                     "retry_after": response.get("Retry-After"), "body": response.content.decode(),
                     "seconds": time.monotonic() - started}
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def answers() -> dict[str, dict[str, Any]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port}/vigil"}
    out = subprocess.run(
        [sys.executable, "-c", REQUESTS], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("path", ["/api/v1/agents/", "/api/v1/hitl/pending/"])
def test_an_api_request_answers_503_json_with_retry_after(answers: dict[str, dict[str, Any]], path: str) -> None:
    answer = answers[path]
    assert (answer["status"], answer["type"], answer["retry_after"]) == (503, "application/json", "5")
    body = json.loads(answer["body"])
    assert body["code"] == "database_unavailable" and set(body) == {"code", "detail", "extra"}


def test_an_admin_page_answers_a_plain_503_without_a_traceback(answers: dict[str, dict[str, Any]]) -> None:
    answer = answers["/admin/"]
    assert (answer["status"], answer["retry_after"]) == (503, "5")
    assert answer["type"].startswith("text/plain")
    assert "database is unavailable" in answer["body"] and "Traceback" not in answer["body"]


def test_readyz_keeps_answering_503_json_fast(answers: dict[str, dict[str, Any]]) -> None:
    answer = answers["/readyz"]
    assert (answer["status"], answer["type"]) == (503, "application/json")
    assert json.loads(answer["body"])["database"] == "failing"
    assert answer["seconds"] < 3
