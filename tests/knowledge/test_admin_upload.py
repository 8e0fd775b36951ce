"""The admin's upload form: agent managers and admins ingest through the service; viewers
read the documents but get no upload form."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from config.connection import connection
from governance.models import AuditEvent
from knowledge.models import Document
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in
from tests.conftest import ALICE, VERA


def test_an_admin_uploads_a_document_in_the_admin_and_the_upload_is_audited(acme: Tenant, acme_client: Client) -> None:
    client = signed_in(acme_client, acme, ALICE)
    assert client.get("/admin/knowledge/document/add/").status_code == 200

    response = client.post(
        "/admin/knowledge/document/add/",
        {
            "collection": "help-center",
            "file": SimpleUploadedFile("faq.txt", b"Our office is open from nine to five.", content_type="text/plain"),
            "metadata": '{"team": "support"}',
        },
    )

    connection.set_tenant(acme)
    document = Document.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/knowledge/document/{document.pk}/change/"
    assert (document.collection.name, document.status, document.metadata) == (
        "help-center",
        "pending",
        {"team": "support"},
    )
    assert AuditEvent.objects.filter(verb="knowledge.document_ingested", actor_label=ALICE).count() == 1


def test_a_bad_file_in_the_admin_shows_the_reason_and_stores_nothing(acme: Tenant, acme_client: Client) -> None:
    client = signed_in(acme_client, acme, ALICE)

    response = client.post(
        "/admin/knowledge/document/add/",
        {
            "collection": "help-center",
            "file": SimpleUploadedFile("blob.bin", b"\x00\x01", content_type="application/octet-stream"),
        },
    )

    assert response.status_code == 200
    assert "unsupported type" in response.content.decode()
    connection.set_tenant(acme)
    assert Document.objects.count() == 0


def test_a_viewer_reads_documents_in_the_admin_but_may_not_upload(acme: Tenant, acme_client: Client) -> None:
    viewer = member_add(acme, VERA, "viewer")
    viewer.is_staff = True  # what holding a role through the user admin sets
    viewer.save(update_fields=["is_staff"])
    client = signed_in(acme_client, acme, VERA)

    assert client.get("/admin/knowledge/document/").status_code == 200
    assert client.get("/admin/knowledge/document/add/").status_code == 403
