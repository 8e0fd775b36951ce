"""The base of every API input serializer.

An input serializer refuses what it would otherwise drop in silence: a field it does not know
(a typo) and a field it shows but does not take (``id``, ``created_at``, a status the service
owns). Both are a 400 naming the field, never a partial write. The OpenAPI schema says the same:
request bodies do not allow additional properties (config.api_schema).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

# What a text may hold, said in the schema as patterns: no NUL (PostgreSQL cannot store it, DRF
# refuses it without saying so in the schema) and, for names stored stripped, one character at
# least that is neither a space nor NUL.
TEXT_PATTERN = r"^[^\x00]*$"
NOT_BLANK_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
NO_NUL = RegexValidator(TEXT_PATTERN, message="Null characters are not allowed.")
NOT_BLANK = RegexValidator(NOT_BLANK_PATTERN, message="must not be blank")

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


class TextField(serializers.CharField):
    """A CharField that takes JSON strings only (DRF's turns ``0`` into ``"0"``), free of NUL."""

    def __init__(self, **kwargs: Any) -> None:
        validators = list(kwargs.pop("validators", None) or [NO_NUL])
        super().__init__(validators=validators, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
