"""Reads of the knowledge base: collections, documents and search (vector, keyword, hybrid).

Every read runs in the connection's current schema, so a tenant only ever sees its own chunks.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import transaction
from django.db.models import F, QuerySet
from pgvector.django import CosineDistance

from config.connection import connection
from knowledge.embedders import embedder_for
from knowledge.exceptions import CollectionNotFound, SearchInvalid
from knowledge.models import TEXT_SEARCH_CONFIG, Chunk, Collection, Document

# Reciprocal rank fusion: score = sum over the lists of 1 / (RRF_K + rank). 60 is the value of
# the original paper (Cormack et al., 2009), which damps the weight of the very first ranks.
RRF_K = 60
# How many candidates each list hands to the fusion, at least.
FUSION_CANDIDATES = 40
MAX_QUERY_CHARS = 2000
# Candidates the HNSW scan keeps; with the iterative scan, a filtered search keeps scanning
# until it has enough rows that pass the filter.
HNSW_EF_SEARCH = 100
_WORD = re.compile(r"[^\W_]+")


class SearchMode(StrEnum):
    VECTOR = "vector"
    KEYWORD = "keyword"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    document_title: str
    position: int
    text: str
    text_hash: str
    score: float
    # Cosine similarity of the chunk to the query (None when the vector list did not rank it).
    similarity: float | None
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def json_storable(value: Any) -> bool:
    """Whether PostgreSQL's jsonb can hold ``value``: no NUL character in any key or string
    and no NaN or infinite number (jsonb refuses both)."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(json_storable(key) and json_storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(json_storable(item) for item in value)
    return True


def collection_list() -> QuerySet[Collection]:
    return Collection.objects.all()


def collection_get(*, name: str) -> Collection:
    found = Collection.objects.filter(name=name).first()
    if found is None:
        raise CollectionNotFound(f"no collection named {name!r}", collection=name)
    return found


def document_list_for(*, collection: str | None = None, status: str | None = None) -> QuerySet[Document]:
    documents = Document.objects.select_related("collection").defer("text")
    if collection:
        documents = documents.filter(collection__name=collection)
    if status:
        documents = documents.filter(status=status)
    return documents


def _vector_ranked(chunks: QuerySet[Chunk], vector: list[float], limit: int) -> list[tuple[int, float]]:
    with transaction.atomic():
        with connection.cursor() as cursor:
            # SET LOCAL: the settings end with this transaction.
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(max(HNSW_EF_SEARCH, limit))}")
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        rows = list(
            chunks.annotate(distance=CosineDistance("embedding", vector))
            .order_by("distance")
            .values_list("pk", "distance")[:limit]
        )
    # relaxed_order may return rows slightly out of order.
    rows.sort(key=lambda row: row[1])
    return [(pk, 1.0 - float(distance)) for pk, distance in rows]


def _keyword_ranked(chunks: QuerySet[Chunk], query: str, limit: int) -> list[tuple[int, float]]:
    words = _WORD.findall(query.lower())
    if not words:
        return []
    # Any word may match (OR); the rank rewards chunks that hold more of them. Words are
    # letters and digits only, so the raw tsquery has no syntax of the user's.
    tsquery = SearchQuery(" | ".join(dict.fromkeys(words)), config=TEXT_SEARCH_CONFIG, search_type="raw")
    rows = (
        chunks.filter(search_vector=tsquery)
        .annotate(rank=SearchRank(F("search_vector"), tsquery, normalization=1))
        .order_by("-rank", "pk")
        .values_list("pk", "rank")[:limit]
    )
    return [(pk, float(rank)) for pk, rank in rows]


def knowledge_search(
    *,
    query: str,
    collection: str,
    mode: str = SearchMode.HYBRID,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
) -> list[SearchHit]:
    """The ``top_k`` chunks of ``collection`` that best answer ``query``, best first.
    ``filters`` keeps chunks whose document metadata contains every given key and value.
    Raises SearchInvalid (400) for an empty or long query, an unknown mode, a ``top_k``
    outside 1..KNOWLEDGE_MAX_TOP_K or filters that are not an object; CollectionNotFound (404);
    EmbeddingFailed (422) when a connection embedder cannot embed the query."""
    cap = settings.KNOWLEDGE_MAX_TOP_K
    fields: dict[str, str] = {}
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
        fields["query"] = f"1-{MAX_QUERY_CHARS} characters"
    if mode not in SearchMode.__members__.values():
        fields["mode"] = f"one of {', '.join(SearchMode)}"
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= cap:
        fields["top_k"] = f"a whole number from 1 to {cap}"
    if filters is not None and not isinstance(filters, dict):
        fields["filters"] = "an object of metadata keys and values"
    if fields:
        raise SearchInvalid("invalid search", fields=fields)
    found = collection_get(name=collection)
    chunks = Chunk.objects.filter(collection=found)
    if filters and not json_storable(filters):
        # No stored metadata can hold such a value, so no document matches.
        chunks = chunks.none()
    elif filters:
        chunks = chunks.filter(document__metadata__contains=filters)
    candidates = max(FUSION_CANDIDATES, top_k * 4) if mode == SearchMode.HYBRID else top_k
    vector_rows: list[tuple[int, float]] = []
    keyword_rows: list[tuple[int, float]] = []
    if mode in (SearchMode.VECTOR, SearchMode.HYBRID):
        vector = embedder_for(found).embed([query])[0]
        vector_rows = _vector_ranked(chunks, vector, candidates)
    if mode in (SearchMode.KEYWORD, SearchMode.HYBRID):
        keyword_rows = _keyword_ranked(chunks, query, candidates)
    similarity = dict(vector_rows)
    if mode == SearchMode.VECTOR:
        ranked = vector_rows
    elif mode == SearchMode.KEYWORD:
        ranked = keyword_rows
    else:
        fused: dict[int, float] = {}
        for rows in (vector_rows, keyword_rows):
            for rank, (pk, _score) in enumerate(rows, start=1):
                fused[pk] = fused.get(pk, 0.0) + 1.0 / (RRF_K + rank)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    ranked = ranked[:top_k]
    found_chunks = Chunk.objects.select_related("document").in_bulk([pk for pk, _ in ranked])
    return [
        SearchHit(
            chunk_id=pk,
            document_id=found_chunks[pk].document_id,
            document_title=found_chunks[pk].document.title,
            position=found_chunks[pk].position,
            text=found_chunks[pk].text,
            text_hash=found_chunks[pk].text_hash,
            score=round(score, 6),
            similarity=round(similarity[pk], 6) if pk in similarity else None,
            metadata=found_chunks[pk].document.metadata,
        )
        for pk, score in ranked
    ]
