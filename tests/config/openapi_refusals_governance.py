"""Operations of the governance API whose schema-valid requests may still be refused with 400 (the
schemathesis run in tests/config/test_openapi_schemathesis.py skips its positive-data check for
them): operation label → why the schema cannot say it."""

REFUSALS: dict[str, str] = {}
