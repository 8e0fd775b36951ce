"""The API's input rules that hold for every endpoint (config/serializers.py, config/api_schema.py)."""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from rest_framework import serializers

from config.serializers import PROTECTED_FIELD, UNKNOWN_FIELD, StrictIn, StrictModelIn, refused_fields
from tests.agents.api_support import token_for
from tests.conftest import ALICE

API_MODULES = [
    "agents.api",
    "agents.api_integrations",
    "agents.api_intake",
    "agents.usage",
    "hitl.api",
    "hitl.api_escalation",
    "hitl.api_policies",
    "governance.api_auth",
    "governance.api_roles",
    "governance.audit_api",
    "knowledge.api",
    "tenants.api",
    "tenants.api_serializers",
]
# Serializers that read query parameters, not bodies (``page`` and the filters sit beside them).
QUERY_SERIALIZERS = {"hitl.api.QueueIn", "hitl.api_escalation.ClarificationsIn"}


def _input_serializers() -> list[type[serializers.BaseSerializer[Any]]]:
    found = []
    for name in API_MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, serializers.BaseSerializer)
                and cls.__module__ == name
                and cls.__name__.endswith("In")
                and f"{name}.{cls.__name__}" not in QUERY_SERIALIZERS
            ):
                found.append(cls)
    return found


def test_every_body_serializer_refuses_unknown_and_read_only_fields() -> None:
    bodies = _input_serializers()
    assert len(bodies) > 25
    loose = [f"{cls.__module__}.{cls.__name__}" for cls in bodies if not issubclass(cls, (StrictIn, StrictModelIn))]
    assert loose == []


def test_refused_fields_names_unknown_and_read_only_ones() -> None:
    class Sample(StrictIn):
        id = serializers.IntegerField(read_only=True)
        name = serializers.CharField()

    sample = Sample(data={"id": 3, "name": "x", "colour": "red"})
    assert refused_fields(sample) == {"colour": [UNKNOWN_FIELD], "id": [PROTECTED_FIELD]}
    assert not sample.is_valid()
    assert sample.errors == {"colour": [UNKNOWN_FIELD], "id": [PROTECTED_FIELD]}


def test_the_schema_closes_every_request_body_and_documents_the_error_shape() -> None:
    generated = SchemaGenerator(urlconf="config.urls_tenant").get_schema(request=None, public=True)
    schema = json.loads(OpenApiJsonRenderer().render(generated))
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["code", "detail", "extra"]
    bodies = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status in ("401", "403", "404", "429", "503"):
                assert status in operation["responses"], (method, path, status)
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                assert media in {"application/json", "multipart/form-data"}, (method, path, media)
                ref = content["schema"].get("$ref", "")
                if ref:
                    bodies += 1
                    component = components[ref.rsplit("/", 1)[1]]
                    assert component.get("additionalProperties") is False, (method, path, ref)
    assert bodies > 25


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/x-www-form-urlencoded", "reason=x"), ("multipart/form-data; boundary=b", "--b--\r\n")],
)
def test_a_body_that_is_not_json_is_a_415_and_changes_nothing(
    acme_client: Client, content_type: str, body: str
) -> None:
    token = token_for(acme_client, ALICE)
    response = acme_client.post(
        "/api/v1/agents/", body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 415, response.content
    assert set(response.json()) == {"code", "detail", "extra"}
    listed = acme_client.get("/api/v1/agents/", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert listed["count"] == 0
