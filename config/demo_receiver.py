"""A small receiver for the demo's deliveries: the tenant's "order system" that the outbox
relay delivers refunds, replies and restarts to, and that answers ``lookup_order``.

It does what a real receiver must: checks the ``Vigil-Signature`` of every request over the raw
body (agents.integrations.signing.signature_verify: HMAC-SHA256 of "<t>.<body>", within five
minutes), refuses a bad one with 401, refuses with 400 an ``Idempotency-Key`` header that is not
the signed body's ``idempotency_key``, and applies each key once (a redelivered key is answered
200 again and not applied twice). ``GET /`` is a page listing what it applied.

    python -m config.demo_receiver --port 8099 --secret-env VIGIL_DEMO_RECEIVER_SECRET

Standard library only (besides the signature check), so the benchmark and the demo run it in a
thread or a process of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from agents.integrations.signing import SIGNATURE_HEADER, signature_verify


@dataclass
class Received:
    key: str
    kind: str
    body: dict[str, Any]
    at: float


@dataclass
class Ledger:
    """What the receiver applied, by Idempotency-Key, and every request it saw."""

    applied: dict[str, Received] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # the Idempotency-Key of each request
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, key: str, body: dict[str, Any]) -> bool:
        """Record a verified request: True the first time its key is applied."""
        with self.lock:
            self.requests.append(key)
            if key in self.applied:
                return False
            self.applied[key] = Received(key=key, kind=str(body.get("kind", "")), body=body, at=time.time())
            return True


class ReceiverHandler(BaseHTTPRequestHandler):
    server: ReceiverServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms per answer on a kept-alive connection).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not signature_verify(self.server.secret, self.headers.get(SIGNATURE_HEADER, ""), raw):
            with self.server.ledger.lock:
                self.server.ledger.bad_signatures += 1
            self._answer(401, {"error": "bad signature"})
            return
        key = self.headers.get("Idempotency-Key", "")
        try:
            body = json.loads(raw)
        except ValueError:
            self._answer(400, {"error": "not JSON"})
            return
        if not isinstance(body, dict) or body.get("idempotency_key") != key:
            # Only the body is signed: a replayed body under another key is no new effect.
            self._answer(400, {"error": "Idempotency-Key differs from the signed body's idempotency_key"})
            return
        self.server.ledger.apply(key, body)
        if body.get("kind") == "lookup_order":
            order = str(body.get("payload", {}).get("order_id", ""))
            self._answer(200, {"order_id": order, "found": True, "status": "delivered", "total": "25.00 EUR"})
            return
        self._answer(200, {"received": key})

    def do_GET(self) -> None:
        with self.server.ledger.lock:
            rows = sorted(self.server.ledger.applied.values(), key=lambda r: r.at, reverse=True)
            seen = len(self.server.ledger.requests)
        if self.path.startswith("/received.json"):
            self._answer(200, [{"key": r.key, "kind": r.kind, "body": r.body} for r in rows])
            return
        items = "".join(
            f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(r.at))}</td><td>{html.escape(r.kind)}</td>"
            f"<td><code>{html.escape(r.key)}</code></td>"
            f"<td><code>{html.escape(json.dumps(r.body.get('payload')))}</code></td></tr>"
            for r in rows
        )
        page = (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3>"
            "<title>Acme order system (demo receiver)</title>"
            "<style>body{font:14px system-ui;margin:2em}td,th{padding:4px 10px;text-align:left}</style>"
            f"<h1>Delivered to Acme's order system</h1><p>{len(rows)} effects applied from {seen} requests "
            "(a redelivered Idempotency-Key is applied once).</p>"
            f"<table><tr><th>at</th><th>kind</th><th>Idempotency-Key</th><th>payload</th></tr>{items}</table>"
        )
        self._answer(200, page, "text/html; charset=utf-8")


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], secret: str, handler: type[ReceiverHandler] = ReceiverHandler):
        super().__init__(address, handler)
        self.secret = secret
        self.ledger = Ledger()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> Self:
        """Serve from a daemon thread (tests, the benchmark); ``shutdown()`` stops it."""
        threading.Thread(target=self.serve_forever, daemon=True, name="receiver").start()
        return self


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--secret-env", default="VIGIL_DEMO_RECEIVER_SECRET", help="variable holding the secret")
    args = parser.parse_args()
    secret = os.environ.get(args.secret_env, "")
    if len(secret) < 16:
        parser.error(f"{args.secret_env} must hold the endpoint's signing secret (16 characters or more)")
    server = ReceiverServer((args.host, args.port), secret)
    print(f"demo receiver listening on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
