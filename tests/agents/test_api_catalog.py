"""What a tenant can build agents from: blueprints and tools; and the API's own description."""

from __future__ import annotations

import re

from django.test import Client

from agents.blueprints import BLUEPRINTS
from agents.models import Tool
from agents.tools import TOOLS
from tenants.models import Tenant
from tests.conftest import ALICE

from .api_support import signed_in


def test_blueprint_list_describes_triage_resolution_and_ops_with_their_config_schema(
    acme: Tenant, acme_client: Client
) -> None:
    response = signed_in(acme_client, acme, ALICE).get("/api/v1/agents/blueprints/")
    assert response.status_code == 200
    by_name = {b["name"]: b for b in response.json()}
    assert sorted(by_name) == ["monitor", "ops", "resolution", "support", "triage"]
    for name, described in by_name.items():
        cls = BLUEPRINTS[name]
        assert described["config_schema"] == cls.config_schema
        assert described["input_schema"] == cls.input_schema
        assert described["default_config"] == cls.default_config
        assert described["tools"] == list(cls.tools)
        assert described["description"]
    assert by_name["triage"]["config_schema"]["properties"]["confidence_threshold"]["type"] == "number"
    assert by_name["resolution"]["tools"] == ["issue_refund", "send_reply", "escalate_to_human"]


def test_tool_list_shows_every_registered_tool_with_its_privilege_level(acme: Tenant, acme_client: Client) -> None:
    response = signed_in(acme_client, acme, ALICE).get("/api/v1/tools/")
    assert response.status_code == 200
    listed = {t["name"]: t for t in response.json()["results"]}
    assert set(listed) == set(TOOLS) == set(Tool.objects.values_list("name", flat=True))
    assert listed["issue_refund"]["privilege_level"] == 3
    assert listed["restart_service"]["privilege_level"] == 4
    assert listed["send_reply"]["has_side_effect"] is True
    assert listed["lookup_order"]["args_schema"] == TOOLS["lookup_order"].args_schema


def test_a_tool_is_retrieved_by_its_name(acme: Tenant, acme_client: Client) -> None:
    response = signed_in(acme_client, acme, ALICE).get("/api/v1/tools/issue_refund/")
    assert response.status_code == 200
    assert response.json()["name"] == "issue_refund"
    assert response.json()["privilege_level"] == Tool.objects.get(name="issue_refund").privilege_level


def test_a_tool_whose_name_holds_a_dot_is_retrieved_by_its_name(acme: Tenant, acme_client: Client) -> None:
    response = signed_in(acme_client, acme, ALICE).get("/api/v1/tools/knowledge.search/")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "knowledge.search"


def test_openapi_schema_is_served_and_describes_the_agents_endpoints(acme_client: Client) -> None:
    response = acme_client.get("/api/schema/")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.startswith("openapi: 3.")
    for path in (
        "/api/v1/agents/:",
        "/api/v1/agents/{id}/execute/:",
        "/api/v1/tasks/{id}/cancel/:",
        "/api/v1/hitl/{id}/approve/:",
        "/api/v1/agents/blueprints/:",
    ):
        assert f"  {path}" in body


def test_api_docs_render_with_swagger_assets_from_the_sidecar_and_no_cdn(acme_client: Client) -> None:
    response = acme_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert assets and all(a.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/") for a in assets)
    assert not re.search(r"https?://", " ".join(assets))
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
    assert acme_client.get(bundle).status_code == 200
