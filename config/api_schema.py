"""What drf-spectacular's generated schema does not know by itself (SPECTACULAR_SETTINGS'
postprocessing hook).

- Every error answer of the API has one shape, ``{code, detail, extra}`` (config.errors); every
  operation documents the errors it can answer with that shape: 401/403 (credentials, role),
  429 (the tenant's request quota), 503 (database unreachable), 400 where it takes a body or
  query parameters, 409 where it changes something
  (a state that no longer allows it, a name already taken), 413/415 where it takes a body;
  404 everywhere (a host that is no tenant's, a row or page that does not exist).
- Request bodies allow no additional properties: input serializers refuse unknown and read-only
  fields (config.serializers.StrictIn).
- Page numbers start at 1.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer: a stable code, a sentence for people, details by code.",
    "properties": {
        "code": {"type": "string", "description": "stable, e.g. invalid, not_found, limit_exceeded"},
        "detail": {"type": "string"},
        "extra": {
            "type": "object",
            "additionalProperties": True,
            "description": "invalid input: {fields: {name: [messages]}}; limits: {limit, value, ...}",
        },
    },
    "required": ["code", "detail", "extra"],
}
DESCRIPTIONS = {
    400: "Invalid input (the fields are named in extra.fields) or a body that does not parse.",
    401: "No credentials, or credentials that are not valid here.",
    403: "The caller's role or scope does not allow this, or a tier limit refuses it.",
    404: "No such row in this tenant (or not visible to the caller), or no such page.",
    409: "The row's state does not allow this now, or the name is taken.",
    413: "The request body is too large.",
    415: "The body is not JSON (application/json).",
    429: "Too many requests: the tenant's quota or a lockout; see Retry-After.",
    503: "The database cannot be reached; retry after Retry-After seconds.",
}
UNSAFE = {"post", "put", "patch", "delete"}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    parameters = operation.get("parameters", [])
    statuses = [401, 403, 429, 503]
    body = "requestBody" in operation
    if body or method in UNSAFE or any(p.get("in") == "query" for p in parameters):
        statuses.append(400)
    # Any path answers 404 on a host that is no tenant's; row and page addresses do too.
    statuses.append(404)
    if method in UNSAFE:
        statuses.append(409)
    if body or method in {"post", "put", "patch"}:
        statuses += [413, 415]
    return sorted(statuses)


def _component(schema: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any] | None:
    ref = ref_or_schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        found = schema.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1])
        return found if isinstance(found, dict) else None
    return ref_or_schema


def _closed(component: dict[str, Any]) -> None:
    if component.get("type") == "object" and "additionalProperties" not in component:
        component["additionalProperties"] = False


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    error_ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status in _statuses(path, method, operation):
                operation["responses"].setdefault(
                    str(status),
                    {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": error_ref}}},
                )
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "page" and parameter.get("in") == "query":
                    parameter.setdefault("schema", {})["minimum"] = 1
            for media in operation.get("requestBody", {}).get("content", {}).values():
                component = _component(result, media.get("schema", {}))
                if component is not None:
                    _closed(component)
    return result
