"""The base of every API input serializer.

An input serializer refuses what it would otherwise drop in silence: a field it does not know
(a typo) and a field it shows but does not take (``id``, ``created_at``, a status the service
owns). Both are a 400 naming the field, never a partial write. The OpenAPI schema says the same:
request bodies do not allow additional properties (config.api_schema).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

UNKNOWN_FIELD = "unknown field"
PROTECTED_FIELD = "read-only field: the server sets it"


def refused_fields(serializer: serializers.Serializer[Any]) -> dict[str, list[str]]:
    """The fields of the request body that ``serializer`` must refuse, with why."""
    data = getattr(serializer, "initial_data", None)
    if not isinstance(data, Mapping):
        return {}
    refused: dict[str, list[str]] = {}
    for name in sorted(data):
        field = serializer.fields.get(name)
        if field is None:
            refused[name] = [UNKNOWN_FIELD]
        elif field.read_only:
            refused[name] = [PROTECTED_FIELD]
    return refused


class StrictIn(serializers.Serializer[Any]):
    """Refuses unknown and read-only fields (400 naming them) before its own validation."""

    def to_internal_value(self, data: Any) -> Any:
        refused = refused_fields(self)
        if refused:
            raise serializers.ValidationError(refused)
        return super().to_internal_value(data)


class StrictModelIn(serializers.ModelSerializer[Any]):
    """The same for serializers built from a model."""

    def to_internal_value(self, data: Any) -> Any:
        refused = refused_fields(self)
        if refused:
            raise serializers.ValidationError(refused)
        return super().to_internal_value(data)
