"""Documents, chunks and embeddings (PRODUCT.md F-KNW). Every row lives in a tenant's schema;
the ``vector`` type and its operators live in ``public`` (tenants/0002) and are reached
through the tenant's search path."""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

# Every collection's embeddings have this many dimensions: one column type means one HNSW
# index. The local model produces 384; an OpenAI-compatible model is asked for 384
# (``dimensions``) and an answer of another length is refused.
EMBEDDING_DIMENSIONS = 384
# Full-text search configuration of the keyword index and of keyword queries.
TEXT_SEARCH_CONFIG = "english"


class Embedder(models.TextChoices):
    LOCAL = "local", "Local model (offline)"
    CONNECTION = "connection", "An operator's LLM connection (OpenAI-compatible)"


class Collection(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    embedder = models.CharField(max_length=20, choices=Embedder.choices, default=Embedder.LOCAL)
    embedder_connection = models.CharField(max_length=50, blank=True, help_text="LLM connection (connection embedder)")
    embedder_model = models.CharField(max_length=100, blank=True, help_text="embedding model of that connection")
    dimension = models.PositiveIntegerField(default=EMBEDDING_DIMENSIONS, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DocumentStatus(models.TextChoices):
    PENDING = "pending", "Pending: waiting to be embedded"
    READY = "ready", "Ready: searchable"
    FAILED = "failed", "Failed"


class Document(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    source = models.CharField(max_length=500, blank=True, help_text="file name or URL it came from")
    content_type = models.CharField(max_length=20)
    content_hash = models.CharField(max_length=64, help_text="sha256 of the extracted text")
    text = models.TextField(help_text="the extracted text that is chunked")
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=DocumentStatus.choices, default=DocumentStatus.PENDING)
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "content_hash"], name="knowledge_document_hash_unique")
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Denormalized from the document so that a search filters one table.
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    text = models.TextField()
    text_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config=TEXT_SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document_id", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="knowledge_chunk_position_unique")]
        indexes = [
            HnswIndex(
                name="knowledge_chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search_vector"], name="knowledge_chunk_fts_gin"),
            models.Index(fields=["collection"], name="knowledge_chunk_collection"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"
