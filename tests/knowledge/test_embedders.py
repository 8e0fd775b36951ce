"""The offline model embeds meaning (not a hashing trick), and an operator's OpenAI-compatible
connection embeds through the real ``openai`` client against a local stub server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from config.connection import connection
from governance.actors import Actor
from knowledge.embedders import ConnectionEmbedder, LocalEmbedder
from knowledge.exceptions import EmbeddingFailed
from knowledge.models import EMBEDDING_DIMENSIONS
from tenants.connections import llm_connection_create
from tenants.models import Tenant


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_local_model_puts_paraphrases_closer_than_unrelated_texts() -> None:
    reset, forgot, shipping = LocalEmbedder().embed(
        ["How do I reset my password?", "I forgot my login credentials", "Shipping costs to Canada"]
    )

    assert len(reset) == EMBEDDING_DIMENSIONS
    assert abs(_cosine(reset, reset) - 1.0) < 1e-4
    assert _cosine(reset, forgot) > 0.5 > 0.2 > _cosine(reset, shipping)


class EmbeddingsStub:
    """A local OpenAI-compatible ``POST /v1/embeddings`` endpoint; ``status`` and ``dimensions``
    shape its answers, ``requests`` keeps what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.dimensions = EMBEDDING_DIMENSIONS
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if stub.status != 200:
                    payload: dict[str, Any] = {"error": {"message": "overloaded"}}
                else:
                    payload = {
                        "object": "list",
                        "model": body["model"],
                        "data": [
                            {"object": "embedding", "index": i, "embedding": [float(i + 1)] * stub.dimensions}
                            for i, _ in enumerate(body["input"])
                        ],
                        "usage": {"prompt_tokens": 3, "total_tokens": 3},
                    }
                data = json.dumps(payload).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def stub() -> Iterator[EmbeddingsStub]:
    running = EmbeddingsStub()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


@pytest.fixture
def embedder(stub: EmbeddingsStub, acme: Tenant, monkeypatch: pytest.MonkeyPatch) -> ConnectionEmbedder:
    monkeypatch.setenv("EMBED_TEST_KEY", "sk-embed-test")
    llm_connection_create(
        name="embeddings",
        base_url=stub.base_url,
        api_key_env="EMBED_TEST_KEY",
        allowed_models=["text-embedding-3-small"],
        tenants=["acme"],
        actor=Actor.operator("tester"),
    )
    connection.set_tenant(acme)
    return ConnectionEmbedder(connection="embeddings", model="text-embedding-3-small", schema_name="acme")


def test_a_connection_embeds_through_the_openai_client_asking_for_our_dimensions(
    embedder: ConnectionEmbedder, stub: EmbeddingsStub
) -> None:
    first, second = embedder.embed(["alpha", "beta"])

    [request] = stub.requests
    assert request["path"] == "/v1/embeddings"
    assert request["auth"] == "Bearer sk-embed-test"
    assert request["body"]["model"] == "text-embedding-3-small"
    assert request["body"]["input"] == ["alpha", "beta"]
    assert request["body"]["dimensions"] == EMBEDDING_DIMENSIONS
    assert abs(_cosine(first, first) - 1.0) < 1e-6 and abs(_cosine(first, second) - 1.0) < 1e-6


def test_a_connection_answering_an_error_fails_with_a_short_message(
    embedder: ConnectionEmbedder, stub: EmbeddingsStub
) -> None:
    stub.status = 503

    with pytest.raises(EmbeddingFailed, match=r"'embeddings' failed \(HTTP 503\)"):
        embedder.embed(["alpha"])


def test_embeddings_of_another_length_are_refused(embedder: ConnectionEmbedder, stub: EmbeddingsStub) -> None:
    stub.dimensions = 1536

    with pytest.raises(EmbeddingFailed, match="returned 1536 dimensions"):
        embedder.embed(["alpha"])


def test_a_connection_not_granted_to_the_tenant_is_refused(embedder: ConnectionEmbedder, beta: Tenant) -> None:
    connection.set_tenant(beta)
    other = ConnectionEmbedder(connection="embeddings", model="text-embedding-3-small", schema_name="beta")

    with pytest.raises(EmbeddingFailed, match="no LLM connection 'embeddings' is available"):
        other.embed(["alpha"])
