"""The knowledge API takes what its OpenAPI schema says and refuses the rest, naming the field:
the upload is multipart/form-data only (a body that does not parse is a 400, never an empty
form), JSON bodies refuse unknown fields and values of the wrong type, the documented
filters are applied, and searching an unknown collection is a 404."""

from __future__ import annotations

import json
from typing import Any, cast

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from config.connection import connection
from knowledge.models import Collection, Document
from knowledge.services import collection_create, document_ingest
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE
from tests.knowledge.support import TESTER

DOCUMENTS = "/api/v1/knowledge/documents/"
COLLECTIONS = "/api/v1/knowledge/collections/"
SEARCH = "/api/v1/knowledge/search/"
ARTICLE = b"# Refunds\n\nA refund reaches the card within five working days."


def _admin(acme: Tenant, acme_client: Client) -> Client:
    connection.set_tenant(acme)
    collection_create(name="help-center", actor=TESTER)
    return signed_in(acme_client, acme, ALICE)


def _fields(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"code", "detail", "extra"}, body
    return cast("dict[str, Any]", body["extra"].get("fields", {}))


def _upload(**parts: Any) -> dict[str, Any]:
    return {"collection": "help-center", "file": SimpleUploadedFile("refunds.md", ARTICLE, "text/markdown"), **parts}


# ----------------------------------------------------------------------- the upload
def test_the_upload_takes_multipart_only_and_other_bodies_are_415(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)

    as_json = client.post(DOCUMENTS, {"collection": "help-center", "file": "text"}, content_type="application/json")
    as_form = client.post(
        DOCUMENTS, "collection=help-center&file=text", content_type="application/x-www-form-urlencoded"
    )
    as_text = client.post(DOCUMENTS, "help-center", content_type="text/plain")

    assert [r.status_code for r in (as_json, as_form, as_text)] == [415, 415, 415]
    assert as_json.json()["code"] == "unsupported_media_type"
    connection.set_tenant(acme)
    assert Document.objects.count() == 0


def test_a_multipart_body_that_holds_no_part_is_400_not_an_empty_form(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)

    response = client.post(DOCUMENTS, b"not a multipart body at all", content_type="multipart/form-data; boundary=xyz")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert "fields" not in response.json()["extra"]


def test_an_upload_without_a_file_or_with_text_in_its_place_is_400_naming_file(
    acme: Tenant, acme_client: Client
) -> None:
    client = _admin(acme, acme_client)

    missing = client.post(DOCUMENTS, {"collection": "help-center"})
    text = client.post(DOCUMENTS, {"collection": "help-center", "file": "just text"})

    assert (missing.status_code, text.status_code) == (400, 400)
    assert "file" in _fields(missing) and "file" in _fields(text)


def test_upload_metadata_must_be_a_json_object_jsonb_can_store(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)

    refused = [
        client.post(DOCUMENTS, _upload(metadata=value))
        for value in ("[1, 2]", "not json", "", '{"lang": "e\\u0000n"}', '{"size": 1e999}')
    ]
    accepted = client.post(DOCUMENTS, _upload(metadata='{"lang": "en", "tags": ["billing"]}'))

    assert [r.status_code for r in refused] == [400] * 5
    assert all("metadata" in _fields(r) for r in refused)
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["metadata"] == {"lang": "en", "tags": ["billing"]}


def test_an_upload_with_an_unknown_part_or_a_bad_collection_name_is_400(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)

    unknown = client.post(DOCUMENTS, _upload(status="ready"))
    bad_name = client.post(DOCUMENTS, _upload(collection="help center"))
    too_long_title = client.post(DOCUMENTS, _upload(title=" " + "t" * 300))

    assert [r.status_code for r in (unknown, bad_name, too_long_title)] == [400, 400, 400]
    assert list(_fields(unknown)) == ["status"]
    assert list(_fields(bad_name)) == ["collection"]
    assert list(_fields(too_long_title)) == ["title"]
    connection.set_tenant(acme)
    assert Document.objects.count() == 0


# ----------------------------------------------------------------------- collections
def test_a_new_collection_refuses_unknown_fields_and_values_of_the_wrong_type(
    acme: Tenant, acme_client: Client
) -> None:
    client = _admin(acme, acme_client)

    unknown = client.post(COLLECTIONS, {"name": "faq", "dimension": 3}, content_type="application/json")
    number = client.post(COLLECTIONS, {"name": "faq", "model": 0}, content_type="application/json")
    spaced = client.post(COLLECTIONS, {"name": " faq"}, content_type="application/json")

    assert [r.status_code for r in (unknown, number, spaced)] == [400, 400, 400]
    assert (list(_fields(unknown)), list(_fields(number)), list(_fields(spaced))) == (
        ["dimension"],
        ["model"],
        ["name"],
    )
    connection.set_tenant(acme)
    assert not Collection.objects.filter(name="faq").exists()


def test_a_collection_name_already_used_is_a_409(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)

    response = client.post(COLLECTIONS, {"name": "help-center"}, content_type="application/json")

    assert response.status_code == 409
    assert (response.json()["code"], _fields(response)) == ("collection_exists", {"name": "already used"})


# ----------------------------------------------------------------------- the document list
def test_the_document_list_applies_its_collection_and_status_filters(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)
    connection.set_tenant(acme)
    collection_create(name="faq", actor=TESTER)
    in_help = document_ingest(
        collection="help-center", data=ARTICLE, filename="a.md", actor=TESTER, enqueue=False
    ).document
    document_ingest(
        collection="faq", data=b"# Hours\n\nOpen nine to five.", filename="b.md", actor=TESTER, enqueue=False
    )

    def ids(query: str) -> list[int]:
        response = client.get(f"{DOCUMENTS}?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("collection=help-center") == [in_help.pk]
    assert ids("collection=nothing-here") == []
    assert len(ids("collection=")) == 2  # empty: no filter
    assert ids("status=ready") == []
    assert len(ids("status=pending")) == 2
    for refused in ("collection=help%20center", "collection=help%00", "status=done", "status=null"):
        response = client.get(f"{DOCUMENTS}?{refused}")
        assert response.status_code == 400, refused
        assert list(_fields(response)) == [refused.split("=")[0]]


# ----------------------------------------------------------------------- search
def test_a_search_of_an_unknown_collection_is_404(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)

    response = client.post(SEARCH, {"query": "refund", "collection": "nowhere"}, content_type="application/json")

    assert response.status_code == 404
    assert response.json() == {
        "code": "collection_not_found",
        "detail": "no collection named 'nowhere'",
        "extra": {"collection": "nowhere"},
    }


def test_a_search_refuses_what_its_schema_refuses_naming_the_field(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)
    valid = {"query": "refund", "collection": "help-center", "mode": "keyword"}
    cases = {
        "top_k": {**valid, "top_k": "5"},
        "query": {**valid, "query": " \n "},
        "collection": {**valid, "collection": "help center"},
        "filters": {**valid, "filters": "lang=en"},
        "score": {**valid, "score": 1},
    }

    answers = {field: client.post(SEARCH, body, content_type="application/json") for field, body in cases.items()}

    assert {field: r.status_code for field, r in answers.items()} == dict.fromkeys(cases, 400)
    assert {r.json()["code"] for r in answers.values()} == {"search_invalid"}
    assert {field: list(_fields(r)) for field, r in answers.items()} == {field: [field] for field in cases}


def test_a_filter_no_stored_metadata_can_hold_matches_nothing(acme: Tenant, acme_client: Client) -> None:
    client = _admin(acme, acme_client)
    body = {"query": "refund", "collection": "help-center", "mode": "keyword", "filters": {"la\u0000ng": "en"}}

    response = client.post(SEARCH, body, content_type="application/json")

    assert (response.status_code, response.json()) == (200, {"results": []})


# ----------------------------------------------------------------------- the schema
def _schema() -> dict[str, Any]:
    generated = SchemaGenerator(urlconf="config.urls_tenant").get_schema(request=None, public=True)
    return cast("dict[str, Any]", json.loads(OpenApiJsonRenderer().render(generated)))


def test_the_schema_shows_the_upload_as_multipart_with_a_binary_file_only() -> None:
    schema = _schema()
    upload = schema["paths"][DOCUMENTS]["post"]
    content = upload["requestBody"]["content"]
    form = schema["components"]["schemas"][content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]]

    assert list(content) == ["multipart/form-data"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    assert form["properties"]["metadata"]["type"] == "object"
    assert content["multipart/form-data"]["encoding"] == {"metadata": {"contentType": "application/json"}}
    assert {"200", "202", "400", "404", "415", "422"} <= set(upload["responses"])
    assert schema["paths"][f"{DOCUMENTS}{{id}}/"]["get"]["parameters"][0]["schema"] == {"type": "integer"}
