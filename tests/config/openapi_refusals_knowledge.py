"""Operations of the knowledge API whose schema-valid requests may still be refused with 400 (the
schemathesis run in tests/config/test_openapi_schemathesis.py skips its positive-data check for
them): operation label → why the schema cannot say it."""

REFUSALS: dict[str, str] = {
    "POST /api/v1/knowledge/collections/": (
        "a rule across fields: the `connection` embedder needs a non-empty `connection` and `model` "
        "(400 naming `embedder`)"
    ),
    "POST /api/v1/knowledge/documents/": (
        "the file's content decides: an empty, binary, unreadable or too large file, or one of an "
        "unsupported type, is refused with 422 naming the problem (unsupported_document_type, "
        "document_too_large, document_invalid)"
    ),
}
