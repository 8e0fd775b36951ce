"""REST API of the knowledge base (/api/v1/knowledge/…): viewers read and search, agent
managers and admins create collections, upload and delete documents."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api import CapabilityPermission
from governance.access import Capability
from governance.actors import Actor
from knowledge import selectors, services
from knowledge.exceptions import DocumentInvalid
from knowledge.models import Collection, Document, Embedder
from knowledge.selectors import SearchMode

VIEW, MANAGE = Capability.VIEW, Capability.MANAGE_AGENTS


class CollectionOut(serializers.ModelSerializer):
    class Meta:
        model = Collection
        fields = ["id", "name", "description", "embedder", "embedder_connection", "embedder_model", "dimension"]


class CollectionIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    embedder = serializers.ChoiceField(choices=Embedder.choices, default=Embedder.LOCAL)
    connection = serializers.CharField(required=False, allow_blank=True, default="")
    model = serializers.CharField(required=False, allow_blank=True, default="")


class DocumentOut(serializers.ModelSerializer):
    collection: serializers.SlugRelatedField[Collection] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

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


class DocumentUploadIn(serializers.Serializer):
    collection = serializers.CharField(max_length=100)
    file = serializers.FileField()
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    metadata = serializers.CharField(required=False, default="{}", help_text="a JSON object")


class SearchIn(serializers.Serializer):
    query = serializers.CharField()
    collection = serializers.CharField(max_length=100)
    mode = serializers.ChoiceField(choices=[m.value for m in SearchMode], default=SearchMode.HYBRID.value)
    top_k = serializers.IntegerField(default=5)
    filters = serializers.DictField(required=False, default=dict)


class SearchHitOut(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    position = serializers.IntegerField()
    text = serializers.CharField()
    text_hash = serializers.CharField()
    score = serializers.FloatField()
    similarity = serializers.FloatField(allow_null=True)
    metadata = serializers.DictField()


class SearchOut(serializers.Serializer):
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


class DocumentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[Document]
):
    """Upload with ``multipart/form-data`` (collection, file, optional title and metadata as
    JSON): 202 with the pending document, which a worker embeds; the same content again is
    200 with the document already there."""

    permission_classes = [CapabilityPermission]
    needs = {"create": MANAGE, "destroy": MANAGE}
    serializer_class = DocumentOut
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_fields = ["status"]

    def get_queryset(self) -> QuerySet[Document]:
        collection = self.request.query_params.get("collection") if self.request else None
        return selectors.document_list_for(collection=collection or None)

    @extend_schema(request=DocumentUploadIn, responses={200: DocumentOut, 202: DocumentOut})
    def create(self, request: Request) -> Response:
        data = DocumentUploadIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            metadata = json.loads(data.validated_data["metadata"] or "{}")
        except json.JSONDecodeError:
            raise DocumentInvalid("metadata must be a JSON object", fields={"metadata": "a JSON object"}) from None
        upload = data.validated_data["file"]
        result = services.document_ingest(
            collection=data.validated_data["collection"],
            data=upload.read(),
            filename=upload.name or "",
            mime=upload.content_type or "",
            title=data.validated_data["title"],
            metadata=metadata,
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
    """Search a collection: ``mode`` vector, keyword or hybrid (default), ``top_k`` up to
    KNOWLEDGE_MAX_TOP_K, ``filters`` on the documents' metadata."""

    permission_classes = [CapabilityPermission]

    @extend_schema(request=SearchIn, responses={200: SearchOut})
    def post(self, request: Request) -> Response:
        data = SearchIn(data=request.data)
        data.is_valid(raise_exception=True)
        hits = selectors.knowledge_search(
            query=data.validated_data["query"],
            collection=data.validated_data["collection"],
            mode=data.validated_data["mode"],
            top_k=data.validated_data["top_k"],
            filters=data.validated_data["filters"] or None,
        )
        return Response({"results": [hit.as_dict() for hit in hits]})
