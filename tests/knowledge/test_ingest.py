"""Ingestion: text, Markdown, HTML and PDF; chunks with overlap; the same content twice is a
no-op; bad files are refused with nothing written; a failed embedding leaves no chunk."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from config.connection import connection
from governance.models import AuditEvent
from knowledge.exceptions import DocumentInvalid, DocumentTooLarge, UnsupportedDocumentType
from knowledge.ingestion import document_extract, text_chunks
from knowledge.models import Chunk, Collection, Document, DocumentStatus, Embedder
from knowledge.services import collection_create, document_embed, document_ingest
from tenants.models import Tenant
from tests.knowledge.support import TESTER, ingested, minimal_pdf

PASSWORD_ARTICLE = """# Resetting your password

Open the sign-in page and choose "Forgot password". We email you a link that is valid for one hour.
Follow it and choose a new password of at least twelve characters.
"""


def test_a_markdown_file_becomes_a_ready_document_with_embedded_chunks(acme: Tenant) -> None:
    document = ingested(acme, "help", "password.md", PASSWORD_ARTICLE, product="web")

    assert (document.title, document.content_type, document.status) == ("Resetting your password", "markdown", "ready")
    chunks = list(Chunk.objects.filter(document=document))
    assert document.chunk_count == len(chunks) >= 1
    assert "Forgot password" in chunks[0].text
    assert len(chunks[0].embedding) == 384
    assert document.metadata == {"product": "web"}
    verbs = (
        AuditEvent.objects.filter(target_type="document", target_id=str(document.pk))
        .order_by("seq")
        .values_list("verb", flat=True)
    )
    assert list(verbs) == ["knowledge.document_ingested", "knowledge.document_embedded"]


def test_html_and_pdf_files_give_their_text_without_markup() -> None:
    html = document_extract(
        data=b"<html><head><title>Shipping</title><style>p{}</style></head>"
        b"<body><h1>Shipping</h1><p>We ship to <b>42</b> countries.</p><script>x()</script></body></html>",
        filename="shipping.html",
    )
    pdf = document_extract(data=minimal_pdf("Refunds are paid within five business days"), filename="refunds.pdf")

    assert (html.title, html.text, html.content_type) == ("Shipping", "Shipping\n\nWe ship to 42 countries.", "html")
    assert (pdf.title, pdf.text, pdf.content_type) == ("refunds", "Refunds are paid within five business days", "pdf")


def test_long_text_is_cut_into_chunks_that_overlap_on_word_boundaries() -> None:
    words = [f"word{i}" for i in range(400)]
    chunks = text_chunks(" ".join(words), size=200, overlap=40)

    assert len(chunks) > 5
    assert all(len(chunk) <= 200 for chunk in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after.split()[0] in before.split()  # the next chunk starts inside the previous one
    assert {word for chunk in chunks for word in chunk.split()} == set(words)


def test_the_same_content_twice_is_a_no_op(acme: Tenant) -> None:
    first = ingested(acme, "help", "password.md", PASSWORD_ARTICLE)
    audit_before = AuditEvent.objects.count()

    again = document_ingest(collection="help", data=PASSWORD_ARTICLE.encode(), filename="copy.md", actor=TESTER)

    assert (again.created, again.document.pk) == (False, first.pk)
    assert Document.objects.count() == 1
    assert AuditEvent.objects.count() == audit_before


@pytest.mark.parametrize(
    ("filename", "data", "error", "message"),
    [
        ("empty.txt", b"  \n", DocumentInvalid, "the file is empty"),
        ("garbage.txt", bytes(range(256)) * 4, DocumentInvalid, "not UTF-8 text"),
        ("garbage.pdf", b"\x00\x01\x02 not a pdf", DocumentInvalid, "not a PDF file"),
        ("broken.pdf", b"%PDF-1.4\n\x00\x01garbage", DocumentInvalid, "not a readable PDF"),
        ("big.txt", b"a" * (1024 * 1024 + 1), DocumentTooLarge, "more than the 1048576 allowed"),
        ("sheet.xlsx", b"PK\x03\x04", UnsupportedDocumentType, "unsupported type"),
    ],
)
def test_a_bad_file_is_refused_with_a_clear_error_and_nothing_is_written(
    acme: Tenant, filename: str, data: bytes, error: type[Exception], message: str
) -> None:
    connection.set_tenant(acme)
    collection_create(name="help", actor=TESTER)
    audit_before = AuditEvent.objects.count()

    with pytest.raises(error, match=message):
        document_ingest(collection="help", data=data, filename=filename, actor=TESTER)

    assert (Document.objects.count(), Chunk.objects.count(), AuditEvent.objects.count()) == (0, 0, audit_before)


def test_a_failed_embedding_records_why_and_leaves_no_chunk(acme: Tenant) -> None:
    connection.set_tenant(acme)
    collection_create(name="remote", actor=TESTER, embedder=Embedder.CONNECTION, connection_name="nowhere", model="m")
    result = document_ingest(
        collection="remote", data=PASSWORD_ARTICLE.encode(), filename="p.md", actor=TESTER, enqueue=False
    )

    document = document_embed(document_id=result.document.pk)

    assert document is not None and document.status == DocumentStatus.FAILED
    assert document.error == "no LLM connection 'nowhere' is available to this tenant"
    assert Chunk.objects.count() == 0


def test_a_failed_document_is_ingested_again_when_sent_again(acme: Tenant) -> None:
    connection.set_tenant(acme)
    collection_create(name="remote", actor=TESTER, embedder=Embedder.CONNECTION, connection_name="nowhere", model="m")
    first = document_ingest(collection="remote", data=b"hello there", filename="a.txt", actor=TESTER, enqueue=False)
    document_embed(document_id=first.document.pk)

    again = document_ingest(collection="remote", data=b"hello there", filename="a.txt", actor=TESTER, enqueue=False)

    assert (again.created, again.document.pk) == (True, first.document.pk)
    assert Document.objects.get().status == DocumentStatus.PENDING


def test_the_ingest_command_ingests_a_directory_with_progress_and_skips_known_content(
    acme: Tenant, tmp_path: Path
) -> None:
    (tmp_path / "password.md").write_text(PASSWORD_ARTICLE)
    (tmp_path / "refunds.pdf").write_bytes(minimal_pdf("Refunds are paid within five business days"))
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01")  # not a supported suffix: not picked from a directory
    out = io.StringIO()

    call_command("ingest", "--tenant", "acme", "--collection", "handbook", str(tmp_path), stdout=out)
    again = io.StringIO()
    call_command("ingest", "--tenant", "acme", "--collection", "handbook", str(tmp_path), stdout=again)

    connection.set_tenant(acme)
    assert Collection.objects.get().name == "handbook"
    assert sorted(Document.objects.values_list("source", "status")) == [
        ("password.md", "ready"),
        ("refunds.pdf", "ready"),
    ]
    assert "[1/2] password.md: [########################] 1/1 chunks" in out.getvalue()
    assert "ready, 1 chunks" in out.getvalue()
    assert again.getvalue().count("unchanged") == 2


def test_the_ingest_command_reports_a_bad_file_and_exits_non_zero(acme: Tenant, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    err = io.StringIO()

    with pytest.raises(CommandError, match="1 of 1 files were not ingested"):
        call_command("ingest", "--tenant", "acme", "--collection", "handbook", str(tmp_path / "empty.txt"), stderr=err)

    assert "empty.txt: refused: empty.txt: the file is empty" in err.getvalue()
