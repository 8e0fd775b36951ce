"""REST API of the knowledge base (/api/v1/knowledge/…): viewers read and search, agent
managers and admins create collections, upload and delete documents."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiRequest,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ParseError
from rest_framework.fields import empty
from rest_framework.parsers import DataAndFiles, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api import CapabilityPermission
from config.serializers import StrictIn
from governance.access import Capability
from governance.actors import Actor
from knowledge import selectors, services
from knowledge.exceptions import SearchInvalid
from knowledge.models import Collection, Document, DocumentStatus, Embedder
from knowledge.selectors import MAX_QUERY_CHARS, SearchMode, json_storable

VIEW, MANAGE = Capability.VIEW, Capability.MANAGE_AGENTS
# What knowledge.services accepts as a collection name (1-100 ASCII letters, digits, - and _).
COLLECTION_NAME = r"^[A-Za-z0-9_-]+$"
# A filter on the collection's name; empty, it does not filter.
COLLECTION_FILTER = r"^[A-Za-z0-9_-]*$"
# Text without NUL characters, which PostgreSQL cannot store. Fields that allow a blank value
# take "" besides (the schema says it as a second choice: one of the two, never both).
TEXT = r"^[^\x00]+$"
# The query also holds something besides white space (knowledge.selectors.knowledge_search).
QUERY = r"^[^\x00]*[^\s\x00][^\x00]*$"
ERROR_RESPONSE = {"$ref": "#/components/schemas/Error"}


class TextField(serializers.RegexField):
    """A JSON string matching ``regex``; a number is refused rather than read as its digits."""

    default_error_messages = {"not_a_string": "Not a valid string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class WholeNumberField(serializers.IntegerField):
    """A JSON number without fraction; a string of digits is refused rather than converted."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _name_field(**kwargs: Any) -> TextField:
    return TextField(COLLECTION_NAME, max_length=100, trim_whitespace=False, **kwargs)


class CollectionOut(serializers.ModelSerializer[Collection]):
    class Meta:
        model = Collection
        fields = ["id", "name", "description", "embedder", "embedder_connection", "embedder_model", "dimension"]


class CollectionIn(StrictIn):
    """A new collection: a name, the embedder (``connection`` needs ``connection`` and ``model``)."""

    name = _name_field()
    description = TextField(TEXT, required=False, allow_blank=True, default="", trim_whitespace=False)
    embedder = serializers.ChoiceField(choices=Embedder.choices, default=Embedder.LOCAL)
    connection = TextField(
        TEXT,
        required=False,
        allow_blank=True,
        default="",
        max_length=50,
        trim_whitespace=False,
        help_text="LLM connection (connection embedder)",
    )
    model = TextField(
        TEXT,
        required=False,
        allow_blank=True,
        default="",
        max_length=100,
        trim_whitespace=False,
        help_text="embedding model of that connection",
    )


class DocumentOut(serializers.ModelSerializer[Document]):
    collection: serializers.SlugRelatedField[Collection] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    metadata = serializers.DictField(read_only=True)

    class Meta:
        model = Document
        fields = [
            "id",
            "collection",
            "title",
            "source",
            "content_type",
            "content_hash",
            "metadata",
            "status",
            "error",
            "chunk_count",
            "created_at",
            "updated_at",
        ]


@extend_schema_field({"type": "object", "additionalProperties": True, "description": "a JSON object"})
class MetadataField(serializers.Field[dict[str, Any], Any, dict[str, Any], Any]):
    """A multipart part holding a JSON object (sent with Content-Type application/json)."""

    default_error_messages = {
        "invalid": "a JSON object",
        "unstorable": "a JSON object without NUL characters or non-finite numbers",
    }

    def get_value(self, dictionary: Mapping[str, Any]) -> Any:
        # A form part that is there but empty is not an object (DRF would read it as absent).
        return dictionary.get(self.field_name or "", empty)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = json.loads(data)
        except ValueError:
            self.fail("invalid")
        if not isinstance(value, dict):
            self.fail("invalid")
        if not json_storable(value):
            self.fail("unstorable")
        return value

    def to_representation(self, value: dict[str, Any]) -> dict[str, Any]:
        return value


class DocumentUploadIn(StrictIn):
    """The upload form (multipart/form-data): the collection, the file, a title, metadata."""

    collection = _name_field()
    file = serializers.FileField()
    title = TextField(TEXT, max_length=300, required=False, allow_blank=True, default="", trim_whitespace=False)
    metadata = MetadataField(required=False, default=dict)


class SearchIn(StrictIn):
    """A search of one collection."""

    query = TextField(QUERY, max_length=MAX_QUERY_CHARS, trim_whitespace=False)
    collection = _name_field()
    mode = serializers.ChoiceField(choices=[m.value for m in SearchMode], default=SearchMode.HYBRID.value)
    top_k = WholeNumberField(default=5, min_value=1, max_value=settings.KNOWLEDGE_MAX_TOP_K)
    filters = serializers.DictField(required=False, default=dict, help_text="metadata keys and values to match")


class SearchHitOut(serializers.Serializer[Any]):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    position = serializers.IntegerField()
    text = serializers.CharField()
    text_hash = serializers.CharField()
    score = serializers.FloatField()
    similarity = serializers.FloatField(allow_null=True)
    metadata = serializers.DictField()


class SearchOut(serializers.Serializer[Any]):
    results = SearchHitOut(many=True)


class CollectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Collection]):
    permission_classes = [CapabilityPermission]
    needs = {"create": MANAGE}
    serializer_class = CollectionOut
    lookup_field = "name"

    def get_queryset(self) -> QuerySet[Collection]:
        return selectors.collection_list()

    @extend_schema(request=CollectionIn, responses={201: CollectionOut})
    def create(self, request: Request) -> Response:
        """A new collection. A name already used is a 409; the ``connection`` embedder needs
        ``connection`` and ``model``."""
        data = CollectionIn(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.collection_create(
            name=data.validated_data["name"],
            description=data.validated_data["description"],
            embedder=data.validated_data["embedder"],
            connection_name=data.validated_data["connection"],
            model=data.validated_data["model"],
            actor=Actor.for_user(request.user),
        )
        return Response(CollectionOut(created).data, status=status.HTTP_201_CREATED)


class UploadParser(MultiPartParser):
    """``multipart/form-data``, where a body that holds no part at all is refused (400) rather
    than read as an empty form."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        parsed: DataAndFiles[Any, Any] = super().parse(stream, media_type, parser_context)
        if not parsed.data and not parsed.files:
            raise ParseError("Multipart form parse error - the body holds no part")
        return parsed


class DocumentFilter(filters.FilterSet):
    # Kept as sent (no stripping): a value that is no collection name is refused (400).
    collection = filters.CharFilter(
        field_name="collection__name", max_length=100, strip=False, validators=[RegexValidator(COLLECTION_FILTER)]
    )
    status = filters.ChoiceFilter(choices=DocumentStatus.choices)

    class Meta:
        model = Document
        fields = ["collection", "status"]


_DOCUMENT_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="the document's id")


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "collection",
                {"type": "string", "maxLength": 100, "pattern": COLLECTION_FILTER},
                description="the documents of this collection (a name); empty: of every collection",
            )
        ]
    ),
    retrieve=extend_schema(parameters=[_DOCUMENT_ID]),
    destroy=extend_schema(parameters=[_DOCUMENT_ID]),
)
class DocumentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[Document]
):
    permission_classes = [CapabilityPermission]
    needs = {"create": MANAGE, "destroy": MANAGE}
    serializer_class = DocumentOut
    # Only the upload takes a body, and only as multipart/form-data (other types: 415).
    parser_classes = [UploadParser]
    filterset_class = DocumentFilter

    def get_queryset(self) -> QuerySet[Document]:
        return selectors.document_list_for()

    @extend_schema(
        request={
            "multipart/form-data": OpenApiRequest(
                DocumentUploadIn, encoding={"metadata": {"contentType": "application/json"}}
            )
        },
        responses={
            200: DocumentOut,
            202: DocumentOut,
            422: OpenApiResponse(
                ERROR_RESPONSE,
                description="The file cannot be ingested: empty, not text, unreadable, too large or of an "
                "unsupported type (code document_invalid, unsupported_document_type, document_too_large).",
            ),
        },
    )
    def create(self, request: Request) -> Response:
        """Upload a file as ``multipart/form-data``: ``collection``, ``file``, optional
        ``title`` and ``metadata`` (a JSON object). 202 with the pending document, which a
        worker embeds; the same content again is 200 with the document already there."""
        data = DocumentUploadIn(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        result = services.document_ingest(
            collection=data.validated_data["collection"],
            data=upload.read(),
            filename=upload.name or "",
            mime=upload.content_type or "",
            title=data.validated_data["title"].strip(),
            metadata=data.validated_data["metadata"],
            actor=Actor.for_user(request.user),
        )
        return Response(
            DocumentOut(result.document).data, status=status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        document = self.get_object()
        services.document_delete(document_id=document.pk, actor=Actor.for_user(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class KnowledgeSearchApi(APIView):
    permission_classes = [CapabilityPermission]

    @extend_schema(
        request=SearchIn,
        responses={
            200: SearchOut,
            422: OpenApiResponse(
                ERROR_RESPONSE,
                description="The collection's connection embedder could not embed the query (code embedding_failed).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        """Search a collection: ``mode`` vector, keyword or hybrid (default), ``top_k`` up to
        KNOWLEDGE_MAX_TOP_K, ``filters`` on the documents' metadata (a document matches when
        its metadata contains every given key and value). An unknown collection is a 404."""
        data = SearchIn(data=request.data)
        if not data.is_valid():
            # The same code as the selector's own refusals (a caller tells them apart by field).
            raise SearchInvalid("invalid search", fields=data.errors)
        hits = selectors.knowledge_search(
            query=data.validated_data["query"],
            collection=data.validated_data["collection"],
            mode=data.validated_data["mode"],
            top_k=data.validated_data["top_k"],
            filters=data.validated_data["filters"] or None,
        )
        return Response({"results": [hit.as_dict() for hit in hits]})
