from config.errors import VigilError


class CollectionNotFound(VigilError):
    code = "collection_not_found"
    status = 404


class CollectionInvalid(VigilError):
    code = "collection_invalid"
    status = 400


class CollectionExists(CollectionInvalid):
    """The name is taken: a conflict with what exists, not a malformed request."""

    code = "collection_exists"
    status = 409


class DocumentNotFound(VigilError):
    code = "document_not_found"
    status = 404


class DocumentInvalid(VigilError):
    """The file cannot be ingested: empty, unreadable, of an unsupported type or too large."""

    code = "document_invalid"
    status = 422


class DocumentTooLarge(DocumentInvalid):
    code = "document_too_large"
    status = 422


class UnsupportedDocumentType(DocumentInvalid):
    code = "unsupported_document_type"
    status = 422


class EmbeddingFailed(VigilError):
    """The embedder could not embed; the document is marked failed with this message."""

    code = "embedding_failed"
    status = 422


class SearchInvalid(VigilError):
    code = "search_invalid"
    status = 400


class KnowledgeForbidden(VigilError):
    code = "permission_denied"
    status = 403
