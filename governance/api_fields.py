"""Serializer fields and schema helpers that make the OpenAPI schema say what the server checks
(tests/config/test_openapi_schemathesis.py holds the API to it).

- ``TextField``: a JSON string, nothing else (DRF's CharField turns ``0`` into ``"0"``), free of
  NUL characters (which DRF refuses), said in the schema as a pattern.
- ``NOT_BLANK``: for names stored stripped: one character at least that is not a space.
- ``IpField``: an IPv4 or IPv6 address (drf-spectacular types IPAddressField as any string).
- ``BodyRequired``: the request body of a view whose fields are all optional but which needs
  one of them at least: the schema marks the body required.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

NO_NUL = RegexValidator(r"^[^\x00]*$", message="Null characters are not allowed.")
NOT_BLANK = RegexValidator(r"^[^\x00]*[^\s\x00][^\x00]*$", message="must not be blank")


class TextField(serializers.CharField):
    """A CharField that takes JSON strings only."""

    def __init__(self, **kwargs: Any) -> None:
        validators = list(kwargs.pop("validators", None) or [NO_NUL])
        super().__init__(validators=validators, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


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
