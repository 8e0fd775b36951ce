"""Services of the knowledge base: collections, ingestion, embedding, deletion.

A document is ingested in two moves. ``document_ingest`` extracts the text (refusing a bad
file before anything is written) and stores the document as pending in one transaction; after
commit, ``knowledge.embed_document`` (a Celery task) calls ``document_embed``, which chunks
and embeds outside any transaction and then writes every chunk and the ready status in one,
or records why it failed. So a document never has part of its chunks."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from config.connection import connection
from governance.actors import Actor
from governance.services import audit_record
from knowledge.embedders import embedder_for
from knowledge.exceptions import (
    CollectionExists,
    CollectionInvalid,
    CollectionNotFound,
    DocumentInvalid,
    DocumentNotFound,
)
from knowledge.ingestion import document_extract, text_chunks
from knowledge.models import Chunk, Collection, Document, DocumentStatus, Embedder

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# A failure message is kept on the document for its readers; long ones are cut.
ERROR_CHARS = 1000


@dataclass(frozen=True)
class IngestResult:
    document: Document
    created: bool  # False: the same content was already in the collection (nothing written)


def _collection_fields_clean(*, name: str, embedder: str, connection_name: str, model: str) -> None:
    errors: dict[str, str] = {}
    if not name or len(name) > 100 or not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name):
        errors["name"] = "1-100 letters, digits, '-' or '_'"
    if embedder not in Embedder.values:
        errors["embedder"] = f"one of {', '.join(Embedder.values)}"
    elif embedder == Embedder.CONNECTION and not (connection_name and model):
        errors["embedder"] = "a connection embedder needs a connection and a model"
    if errors:
        raise CollectionInvalid("invalid collection", fields=errors)


def _collection_create_within(
    *, name: str, description: str, embedder: str, connection_name: str, model: str, actor: Actor
) -> Collection:
    _collection_fields_clean(name=name, embedder=embedder, connection_name=connection_name, model=model)
    if Collection.objects.filter(name=name).exists():
        raise CollectionExists(f"a collection named {name!r} exists", fields={"name": "already used"})
    collection = Collection.objects.create(
        name=name,
        description=description,
        embedder=embedder,
        embedder_connection=connection_name if embedder == Embedder.CONNECTION else "",
        embedder_model=model if embedder == Embedder.CONNECTION else "",
    )
    audit_record(
        actor=actor,
        verb="knowledge.collection_created",
        target_type="collection",
        target_id=collection.pk,
        data={"name": name, "embedder": embedder, "connection": collection.embedder_connection},
    )
    return collection


@transaction.atomic(durable=True)
def collection_create(
    *,
    name: str,
    actor: Actor,
    description: str = "",
    embedder: str = Embedder.LOCAL,
    connection_name: str = "",
    model: str = "",
) -> Collection:
    """A new collection. Raises CollectionInvalid (400) for a bad name or embedder,
    CollectionExists (409) for a name already used."""
    return _collection_create_within(
        name=name, description=description, embedder=embedder, connection_name=connection_name, model=model, actor=actor
    )


def _embed_enqueue(document_id: int) -> None:
    from knowledge.tasks import embed_document

    schema = connection.schema_name
    transaction.on_commit(lambda: embed_document.delay(schema=schema, document_id=document_id))


@transaction.atomic(durable=True)
def document_ingest(
    *,
    collection: str,
    data: bytes,
    filename: str,
    actor: Actor,
    mime: str = "",
    title: str = "",
    metadata: dict[str, Any] | None = None,
    create_collection: bool = False,
    enqueue: bool = True,
) -> IngestResult:
    """Store a file's text in ``collection`` as a pending document and (``enqueue``) have a
    worker embed it after commit. The same text twice in a collection is a no-op: the first
    document is returned with ``created`` False and nothing is written; a document that had
    failed is queued again. Raises DocumentInvalid (422; empty, binary, unreadable, too large,
    unsupported type: nothing is written), CollectionNotFound (404, unless
    ``create_collection``, which makes a collection with the local embedder)."""
    if metadata is not None and not isinstance(metadata, dict):
        raise DocumentInvalid("metadata must be a JSON object", fields={"metadata": "a JSON object"})
    extracted = document_extract(data=data, filename=filename, mime=mime, title=title)
    found = Collection.objects.filter(name=collection).first()
    if found is None:
        if not create_collection:
            raise CollectionNotFound(f"no collection named {collection!r}", collection=collection)
        found = _collection_create_within(
            name=collection, description="", embedder=Embedder.LOCAL, connection_name="", model="", actor=actor
        )
    document, created = Document.objects.select_for_update().get_or_create(
        collection=found,
        content_hash=extracted.content_hash,
        defaults={
            "title": extracted.title,
            "source": filename[:500],
            "content_type": extracted.content_type,
            "text": extracted.text,
            "metadata": metadata or {},
        },
    )
    if not created and document.status != DocumentStatus.FAILED:
        return IngestResult(document=document, created=False)
    if not created:
        document.status, document.error = DocumentStatus.PENDING, ""
        document.save(update_fields=["status", "error", "updated_at"])
    audit_record(
        actor=actor,
        verb="knowledge.document_ingested",
        target_type="document",
        target_id=document.pk,
        data={
            "collection": found.name,
            "title": document.title,
            "source": document.source,
            "content_hash": document.content_hash,
            "retry": not created,
        },
    )
    if enqueue:
        _embed_enqueue(document.pk)
    return IngestResult(document=document, created=True)


@transaction.atomic(durable=True)
def _document_ready(*, document_id: int, texts: list[str], vectors: list[list[float]]) -> Document | None:
    document = Document.objects.select_for_update().filter(pk=document_id).first()
    if document is None or document.status != DocumentStatus.PENDING:
        return document  # deleted meanwhile, or another run of the task finished it
    Chunk.objects.filter(document=document).delete()
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            collection_id=document.collection_id,
            position=position,
            text=text,
            text_hash=hashlib.sha256(text.encode()).hexdigest(),
            embedding=vector,
        )
        for position, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    )
    document.status, document.error, document.chunk_count = DocumentStatus.READY, "", len(texts)
    document.save(update_fields=["status", "error", "chunk_count", "updated_at"])
    audit_record(
        actor=Actor.system("knowledge"),
        verb="knowledge.document_embedded",
        target_type="document",
        target_id=document.pk,
        data={"chunks": len(texts)},
    )
    return document


@transaction.atomic(durable=True)
def _document_failed(*, document_id: int, error: str) -> Document | None:
    document = Document.objects.select_for_update().filter(pk=document_id).first()
    if document is None or document.status != DocumentStatus.PENDING:
        return document
    Chunk.objects.filter(document=document).delete()
    document.status, document.error, document.chunk_count = DocumentStatus.FAILED, error[:ERROR_CHARS], 0
    document.save(update_fields=["status", "error", "chunk_count", "updated_at"])
    audit_record(
        actor=Actor.system("knowledge"),
        verb="knowledge.document_failed",
        target_type="document",
        target_id=document.pk,
        data={"error": document.error},
    )
    return document


def document_embed(*, document_id: int, progress: Progress | None = None) -> Document | None:
    """Chunk and embed a pending document, in batches of KNOWLEDGE_EMBED_BATCH, then write all
    its chunks and mark it ready in one transaction; on any failure mark it failed with the
    reason and write no chunk. Safe to run twice: a document that is not pending (done,
    failed, or deleted: None) is left alone. The embedder runs outside any transaction."""
    document = Document.objects.select_related("collection").filter(pk=document_id).first()
    if document is None or document.status != DocumentStatus.PENDING:
        return document
    texts = text_chunks(document.text)
    batch = settings.KNOWLEDGE_EMBED_BATCH
    vectors: list[list[float]] = []
    try:
        embedder = embedder_for(document.collection)
        for start in range(0, len(texts), batch):
            vectors.extend(embedder.embed(texts[start : start + batch]))
            if progress is not None:
                progress(len(vectors), len(texts))
    except Exception as exc:  # any failure of the embedder fails the document, with the reason
        logger.warning("knowledge.embed_failed", extra={"document_id": document_id}, exc_info=exc)
        detail = getattr(exc, "detail", None) or f"embedding failed ({type(exc).__name__})"
        return _document_failed(document_id=document_id, error=str(detail))
    return _document_ready(document_id=document_id, texts=texts, vectors=vectors)


@transaction.atomic(durable=True)
def document_delete(*, document_id: int, actor: Actor) -> None:
    """Delete a document and its chunks. Raises DocumentNotFound (404)."""
    document = (
        Document.objects.select_for_update(of=("self",)).select_related("collection").filter(pk=document_id).first()
    )
    if document is None:
        raise DocumentNotFound(f"no document {document_id}", document_id=document_id)
    data = {"collection": document.collection.name, "title": document.title, "content_hash": document.content_hash}
    document.delete()
    audit_record(
        actor=actor, verb="knowledge.document_deleted", target_type="document", target_id=document_id, data=data
    )
