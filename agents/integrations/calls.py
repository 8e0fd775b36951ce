"""Tools that answer from the tenant's own systems: the tool's result is the answer of the
endpoint that takes its kind (``lookup_order`` asks the tenant's order endpoint), signed and
checked against the egress rules like any delivery."""

from __future__ import annotations

import hashlib
import http.client
from typing import Any

from agents.exceptions import ToolError
from agents.integrations.egress import EgressRefused
from agents.integrations.http import endpoint_post
from agents.integrations.relay import endpoint_for
from agents.integrations.secrets import SecretUnreadable
from governance.hashchain import canonical_json


def endpoint_call(*, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST ``payload`` to the enabled endpoint for ``kind``: its JSON object answer. Raises
    ToolError (no endpoint, refused URL, connection failure, non-2xx or non-object answer),
    which the engine retries with backoff like any failed step."""
    endpoint = endpoint_for(kind)
    if endpoint is None:
        raise ToolError(f"no enabled endpoint takes {kind!r}: a tenant admin configures one")
    key = f"{kind}:{hashlib.sha256(canonical_json({'kind': kind, 'payload': payload}).encode()).hexdigest()[:32]}"
    body = canonical_json({"kind": kind, "payload": payload, "idempotency_key": key}).encode()  # the key, signed
    try:
        answer = endpoint_post(endpoint=endpoint, body=body, idempotency_key=key)
    except (EgressRefused, SecretUnreadable) as exc:
        raise ToolError(f"the {kind} endpoint {endpoint.name!r} cannot be called: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ToolError(f"the {kind} endpoint {endpoint.name!r} did not answer: {type(exc).__name__}") from None
    if not 200 <= answer.status < 300:
        raise ToolError(f"the {kind} endpoint {endpoint.name!r} answered HTTP {answer.status}")
    try:
        result = answer.json()
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise ToolError(f"the {kind} endpoint {endpoint.name!r} did not answer with a JSON object")
    return result
