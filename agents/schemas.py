"""JSON-schema checks for tool arguments, agent configs and structured LLM output, with
every problem reported at its path so API users get field-level errors."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator


def schema_errors(value: Any, schema: dict[str, Any]) -> dict[str, str]:
    """Return {path: message} for every violation; empty when the value is valid."""
    validator = Draft202012Validator(schema)
    errors: dict[str, str] = {}
    for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        if error.validator == "required" and error.validator_value:
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = f"{path}.{missing}" if path != "(root)" else missing
            errors.setdefault(path, "this field is required")
            continue
        errors.setdefault(path, error.message)
    return errors


def check_schema(schema: Any) -> None:
    """Raise jsonschema.SchemaError when ``schema`` is not a valid JSON schema."""
    Draft202012Validator.check_schema(schema)
