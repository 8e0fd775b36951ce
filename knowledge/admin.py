"""The tenant admin's knowledge screens: collections and documents to read, and an upload
form (agent managers and admins) that goes through the ingestion service."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from config.errors import VigilError
from governance.access import Capability
from governance.actors import Actor
from governance.admin import AccessAdminMixin
from knowledge.models import Collection, Document
from knowledge.services import document_ingest


class UploadForm(forms.Form):
    collection = forms.SlugField(max_length=100, initial="help-center", help_text="created if missing")
    file = forms.FileField()
    title = forms.CharField(max_length=300, required=False, help_text="default: the file's own title or name")
    metadata = forms.CharField(
        required=False, initial="{}", widget=forms.Textarea(attrs={"rows": 3}), help_text="a JSON object"
    )

    def clean_metadata(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cleaned_data["metadata"] or "{}")
        except json.JSONDecodeError:
            raise forms.ValidationError("not valid JSON") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('a JSON object, like {"product": "web"}')
        return value


@admin.register(Collection)
class CollectionAdmin(AccessAdminMixin, admin.ModelAdmin):
    list_display = ["name", "embedder", "embedder_connection", "embedder_model", "dimension", "created_at"]
    readonly_fields = ["name", "description", "embedder", "embedder_connection", "embedder_model", "dimension"]


@admin.register(Document)
class DocumentAdmin(AccessAdminMixin, admin.ModelAdmin):
    access_add = Capability.MANAGE_AGENTS
    list_display = ["title", "collection", "content_type", "status", "chunk_count", "created_at"]
    list_filter = ["status", "collection", "content_type"]
    search_fields = ["title", "source"]
    exclude = ["text"]
    readonly_fields = [
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

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        # Not the model form: ingestion is the service's job (one durable transaction of its own).
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        error = ""
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = document_ingest(
                    collection=form.cleaned_data["collection"],
                    data=upload.read(),
                    filename=upload.name or "",
                    mime=upload.content_type or "",
                    title=form.cleaned_data["title"],
                    metadata=form.cleaned_data["metadata"],
                    actor=Actor.for_user(request.user),
                    create_collection=True,
                )
            except VigilError as exc:
                error = str(exc)
            else:
                document = result.document
                note = "queued for embedding" if result.created else "already there: nothing changed"
                self.message_user(request, f"{document.title}: {note}", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:knowledge_document_change", args=[document.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "error": error,
            "title": "Upload a document",
        }
        return TemplateResponse(request, "admin/knowledge/document/upload.html", context)
