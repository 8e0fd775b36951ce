"""Search (vector, keyword, hybrid) through the selector, the API and the agents' tool: the
right chunk comes first, filters and the top-k cap hold, and a tenant never sees another's
chunks."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from agents.tools import TOOLS
from config.connection import connection
from knowledge.exceptions import SearchInvalid
from knowledge.models import Document
from knowledge.selectors import knowledge_search
from knowledge.tools import SEARCH_TOOL
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in
from tests.conftest import ALICE, BOB, VERA
from tests.knowledge.support import ingested

ARTICLES = {
    "password.md": "# Resetting your password\n\nOpen the sign-in page and choose Forgot password. "
    "We email you a link that is valid for one hour.",
    "shipping.md": "# Shipping times\n\nParcels leave our warehouse within two days and arrive in three to "
    "five business days in Europe.",
    "refunds.md": "# Refunds\n\nMoney is returned to the original card within five business days after "
    "we receive the item back.",
}


@pytest.fixture
def acme_help(acme: Tenant) -> dict[str, Document]:
    return {
        name: ingested(acme, "help-center", name, text, audience="customers" if name != "refunds.md" else "staff")
        for name, text in ARTICLES.items()
    }


@pytest.fixture
def beta_help(beta: Tenant) -> Document:
    return ingested(beta, "help-center", "secret.md", "# Beta vault\n\nHow to reset the vault password of Beta.")


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_each_mode_ranks_the_answering_document_first(acme_help: dict[str, Document], mode: str) -> None:
    hits = knowledge_search(query="How do I reset my password?", collection="help-center", mode=mode, top_k=3)

    assert hits[0].document_id == acme_help["password.md"].pk
    assert "Resetting your password" in hits[0].text


def test_a_paraphrase_without_shared_words_is_found_by_meaning(acme_help: dict[str, Document]) -> None:
    [hit] = knowledge_search(query="when will my parcel be delivered", collection="help-center", mode="vector", top_k=1)

    assert hit.document_id == acme_help["shipping.md"].pk
    assert hit.similarity is not None and hit.similarity > 0.3


def test_metadata_filters_keep_only_matching_documents(acme_help: dict[str, Document]) -> None:
    hits = knowledge_search(
        query="money back on my card", collection="help-center", top_k=5, filters={"audience": "customers"}
    )

    assert {hit.document_id for hit in hits} == {acme_help["password.md"].pk, acme_help["shipping.md"].pk}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"top_k": 21}, "top_k"), ({"top_k": 0}, "top_k"), ({"query": " "}, "query"), ({"mode": "fuzzy"}, "mode")],
)
def test_bad_search_arguments_are_refused(acme: Tenant, arguments: dict[str, Any], field: str) -> None:
    connection.set_tenant(acme)
    with pytest.raises(SearchInvalid) as refused:
        knowledge_search(**{"query": "password", "collection": "help-center", **arguments})

    assert field in refused.value.extra["fields"]


def test_the_api_searches_only_the_callers_tenant(
    acme_help: dict[str, Document],
    beta_help: Document,
    acme_client: Client,
    beta_client: Client,
    acme: Tenant,
    beta: Tenant,
) -> None:
    body = {"query": "reset password", "collection": "help-center", "top_k": 20}
    acme_response = signed_in(acme_client, acme, ALICE).post(
        "/api/v1/knowledge/search/", body, content_type="application/json"
    )
    beta_response = signed_in(beta_client, beta, BOB).post(
        "/api/v1/knowledge/search/", body, content_type="application/json"
    )

    assert acme_response.status_code == beta_response.status_code == 200
    acme_docs = {hit["document_id"] for hit in acme_response.json()["results"]}
    beta_docs = {hit["document_id"] for hit in beta_response.json()["results"]}
    assert acme_docs == {doc.pk for doc in acme_help.values()}
    assert beta_docs == {beta_help.pk}
    assert "vault" not in acme_response.content.decode()


def test_the_api_refuses_a_top_k_above_the_cap_with_the_field_named(
    acme_help: dict[str, Document], acme_client: Client, acme: Tenant
) -> None:
    response = signed_in(acme_client, acme, ALICE).post(
        "/api/v1/knowledge/search/",
        {"query": "password", "collection": "help-center", "top_k": 500},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "search_invalid"
    assert "top_k" in response.json()["extra"]["fields"]


def test_the_search_tool_returns_cited_chunks_of_the_tasks_tenant_only(
    acme_help: dict[str, Document], beta_help: Document, acme: Tenant
) -> None:
    connection.set_tenant(acme)
    spec = TOOLS[SEARCH_TOOL]

    result = spec.run({"query": "How do I reset my password?", "top_k": 10}).result

    assert spec.level == 1 and spec.has_side_effect is False
    assert result["results"][0]["document_id"] == acme_help["password.md"].pk
    assert beta_help.pk not in {hit["document_id"] for hit in result["results"]}
    assert result["confidence"] > 0.5
    assert all(isinstance(hit["chunk_id"], int) and len(hit["text_hash"]) == 64 for hit in result["results"])


def test_a_viewer_searches_but_may_not_upload(
    acme_help: dict[str, Document], acme_client: Client, acme: Tenant
) -> None:
    member_add(acme, VERA, "viewer")
    client = signed_in(acme_client, acme, VERA)

    searched = client.post(
        "/api/v1/knowledge/search/", {"query": "refund", "collection": "help-center"}, content_type="application/json"
    )
    uploaded = client.post(
        "/api/v1/knowledge/documents/", {"collection": "help-center", "file": _upload("x.txt", b"hi")}
    )

    assert searched.status_code == 200
    assert uploaded.status_code == 403
    assert Document.objects.count() == 3


def _upload(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="text/plain")
