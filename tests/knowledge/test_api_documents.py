"""Documents over the API: upload (a real worker embeds it), the same file again, a bad file,
delete, and who may do what."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from config.connection import connection
from governance.models import AuditEvent
from knowledge.models import Chunk, Document
from knowledge.services import collection_create
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in
from tests.agents.helpers_execution import unique, use_tenant, wait_until
from tests.conftest import ALICE, BOB, MAX, PASSWORD, WorkerHandle, host_client
from tests.knowledge.support import TESTER, ingested

ARTICLE = b"# Two-factor login\n\nTurn on two-factor login under Settings, Security, Authenticator app."


def _file(name: str, data: bytes, mime: str = "text/markdown") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=mime)


def test_an_uploaded_file_is_embedded_by_a_worker_and_becomes_searchable(
    committed: None, celery_worker: WorkerHandle
) -> None:
    tenant = use_tenant("acme")
    name = unique("kb")
    collection_create(name=name, actor=TESTER)
    client = host_client("acme.localhost")
    assert client.login(username=ALICE, password=PASSWORD)
    body = unique("article").encode() + b"\n\n" + ARTICLE

    response = client.post(
        "/api/v1/knowledge/documents/",
        {"collection": name, "file": _file("2fa.md", body), "metadata": '{"lang": "en"}'},
    )

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    connection.set_tenant(tenant)
    document = wait_until(
        lambda: Document.objects.filter(pk=response.json()["id"], status="ready").first(),
        timeout=60,
        what="the worker to embed the document",
    )
    assert document.chunk_count == Chunk.objects.filter(document=document).count() >= 1
    searched = client.post(
        "/api/v1/knowledge/search/",
        {"query": "authenticator app", "collection": name, "filters": {"lang": "en"}},
        content_type="application/json",
    )
    assert searched.json()["results"][0]["document_id"] == document.pk
    again = client.post("/api/v1/knowledge/documents/", {"collection": name, "file": _file("copy.md", body)})
    assert (again.status_code, again.json()["id"]) == (200, document.pk)


def test_an_unsupported_file_is_refused_with_422_and_nothing_is_stored(acme: Tenant, acme_client: Client) -> None:
    connection.set_tenant(acme)
    collection_create(name="help-center", actor=TESTER)
    client = signed_in(acme_client, acme, ALICE)

    response = client.post(
        "/api/v1/knowledge/documents/",
        {"collection": "help-center", "file": _file("photo.png", b"\x89PNG\r\n", "image/png")},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "unsupported_document_type"
    connection.set_tenant(acme)
    assert Document.objects.count() == 0


def test_an_agent_manager_deletes_a_document_and_the_deletion_is_audited(acme: Tenant, acme_client: Client) -> None:
    document = ingested(acme, "help-center", "2fa.md", ARTICLE)
    member_add(acme, MAX, "agent_manager")

    response = signed_in(acme_client, acme, MAX).delete(f"/api/v1/knowledge/documents/{document.pk}/")

    assert response.status_code == 204
    connection.set_tenant(acme)
    assert (Document.objects.count(), Chunk.objects.count()) == (0, 0)
    event = AuditEvent.objects.filter(verb="knowledge.document_deleted").get()
    assert (event.target_id, event.actor_label) == (str(document.pk), MAX)


def test_another_tenants_documents_are_neither_listed_nor_deletable(
    acme: Tenant, beta: Tenant, beta_client: Client
) -> None:
    document = ingested(acme, "help-center", "2fa.md", ARTICLE)
    client = signed_in(beta_client, beta, BOB)

    listed = client.get("/api/v1/knowledge/documents/")
    deleted = client.delete(f"/api/v1/knowledge/documents/{document.pk}/")

    assert (listed.status_code, listed.json()["count"]) == (200, 0)
    assert deleted.status_code == 404
    connection.set_tenant(acme)
    assert Document.objects.filter(pk=document.pk).exists()
