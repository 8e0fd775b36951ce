"""Serializer fields and schema helpers that make the OpenAPI schema say what the server checks
(tests/config/test_openapi_schemathesis.py holds the API to it); texts are
config.serializers' TextField, NO_NUL and NOT_BLANK.

- ``IpField``: an IPv4 or IPv6 address (drf-spectacular types IPAddressField as any string).
- ``BodyRequired``: the request body of a view whose fields are all optional but which needs
  one of them at least: the schema marks the body required.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
class IpField(serializers.IPAddressField):
    """An IPv4 or IPv6 address, a JSON string."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class BodyRequired(AutoSchema):
    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        body: dict[str, Any] | None = super()._get_request_body(direction)
        if body:
            body["required"] = True
        return body
