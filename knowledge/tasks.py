"""Celery entry points of the knowledge base: thin, tenant-scoped, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from agents.tasks import TenantTask
from knowledge import services


@shared_task(base=TenantTask, name="knowledge.embed_document", acks_late=True, ignore_result=True)
def embed_document(*, schema: str, document_id: int) -> str:
    # Idempotent: document_embed leaves a document that is no longer pending alone.
    document = services.document_embed(document_id=document_id)
    return document.status if document is not None else "gone"
