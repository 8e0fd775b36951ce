"""pgvector lives once, in public; every tenant schema stores and ranks vectors through its
search path, with its own HNSW and full-text indexes."""

from __future__ import annotations

from pgvector.django import CosineDistance

from config.connection import connection
from knowledge.models import EMBEDDING_DIMENSIONS, Chunk, Collection, Document
from tenants.models import Tenant


def _axis(i: int) -> list[float]:
    vector = [0.0] * EMBEDDING_DIMENSIONS
    vector[i] = 1.0
    return vector


def _chunks_in(tenant: Tenant, texts: list[str]) -> list[Chunk]:
    connection.set_tenant(tenant)
    collection = Collection.objects.create(name="handbook")
    document = Document.objects.create(
        collection=collection, title="Handbook", content_type="text", content_hash="h" * 64, text="\n".join(texts)
    )
    return Chunk.objects.bulk_create(
        Chunk(document=document, collection=collection, position=i, text=text, text_hash=str(i), embedding=_axis(i))
        for i, text in enumerate(texts)
    )


def test_the_vector_extension_is_installed_once_in_the_public_schema(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )
        assert cursor.fetchall() == [("public",)]


def test_two_tenants_store_and_rank_vectors_and_text_each_in_their_own_schema(acme: Tenant, beta: Tenant) -> None:
    _chunks_in(acme, ["refund policy for acme", "acme shipping times"])
    _chunks_in(beta, ["beta password reset", "beta invoices", "beta api keys"])

    for tenant, nearest, count, word, matched in (
        (acme, "acme shipping times", 2, "shipping", ["acme shipping times"]),
        (beta, "beta invoices", 3, "invoice", ["beta invoices"]),
    ):
        connection.set_tenant(tenant)
        ranked = Chunk.objects.annotate(distance=CosineDistance("embedding", _axis(1))).order_by("distance")
        assert (ranked[0].text, ranked.count()) == (nearest, count)
        assert list(Chunk.objects.filter(search_vector=word).values_list("text", flat=True)) == matched


def test_each_tenant_schema_has_the_hnsw_cosine_and_gin_full_text_indexes(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, indexname, indexdef FROM pg_indexes WHERE schemaname IN ('acme', 'beta') "
            "AND indexname IN ('knowledge_chunk_embedding_hnsw', 'knowledge_chunk_fts_gin') ORDER BY 1, 2"
        )
        rows = cursor.fetchall()

    assert [(schema, name) for schema, name, _ in rows] == [
        ("acme", "knowledge_chunk_embedding_hnsw"),
        ("acme", "knowledge_chunk_fts_gin"),
        ("beta", "knowledge_chunk_embedding_hnsw"),
        ("beta", "knowledge_chunk_fts_gin"),
    ]
    assert all("hnsw" in ddl and "vector_cosine_ops" in ddl for _, name, ddl in rows if name.endswith("hnsw"))
    assert all("gin" in ddl for _, name, ddl in rows if name.endswith("gin"))


def test_a_vector_query_uses_the_hnsw_index(acme: Tenant) -> None:
    _chunks_in(acme, ["one", "two"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = (
        Chunk.objects.annotate(distance=CosineDistance("embedding", _axis(0)))
        .order_by("distance")
        .values("pk")[:5]
        .explain()
    )

    assert "knowledge_chunk_embedding_hnsw" in plan
