"""Tenant admin screens for credentials and endpoints (agents.integrations). Secrets are
write-only: the forms set or replace them and never show them; every change goes through the
integrations' services, so it is validated and audited like an API call. Admins only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from agents.integrations import services
from agents.integrations.services import ENDPOINT_KINDS
from agents.models import Credential, Endpoint
from config.errors import VigilError
from governance.access import Capability
from governance.actors import Actor
from governance.admin import AccessAdminMixin

ADMIN = Capability.MANAGE_USERS


def _secret_field(help_text: str) -> forms.CharField:
    return forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False), help_text=help_text
    )


def _form_errors(form: forms.BaseForm, exc: VigilError) -> None:
    fields = exc.extra.get("fields") or {}
    for key, message in fields.items():
        form.add_error(key if key in form.fields else None, message)
    if not fields:
        form.add_error(None, exc.detail)


class CredentialForm(forms.ModelForm):
    # Not the model's field name: ``secret`` holds the encrypted token and is not editable.
    value = _secret_field(
        "never shown again: on an existing credential, leave it empty to keep it, or give a new value to rotate it"
    )

    class Meta:
        model = Credential
        fields = ["name", "kind", "header_name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("name", "kind", "header_name"):
            if self.instance.pk and name in self.fields:
                self.fields[name].disabled = True
        if not self.instance.pk and "value" in self.fields:
            self.fields["value"].required = True


@admin.register(Credential)
class CredentialAdmin(AccessAdminMixin, admin.ModelAdmin):
    access_view = access_add = access_change = access_delete = ADMIN
    form = CredentialForm
    fields = ("name", "kind", "header_name", "value", "created_by", "created_at", "rotated_at")
    list_display = ("name", "kind", "header_name", "created_by", "created_at", "rotated_at")
    readonly_fields = ("created_by", "created_at", "rotated_at")

    def save_model(self, request: HttpRequest, obj: Credential, form: Any, change: bool) -> None:
        data, actor = form.cleaned_data, Actor.for_user(request.user)
        if not change:
            created = services.credential_create(
                name=data["name"],
                kind=data["kind"],
                header_name=data.get("header_name", ""),
                secret=data["value"],
                actor=actor,
            )
            obj.pk, obj._state.adding = created.pk, False
        elif data.get("value"):
            services.credential_rotate(name=obj.name, secret=data["value"], actor=actor)

    def delete_model(self, request: HttpRequest, obj: Credential) -> None:
        services.credential_delete(name=obj.name, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        for credential in queryset:
            self.delete_model(request, credential)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class Checked(form_class):  # type: ignore[misc,valid-type]
            def clean(self) -> dict[str, Any]:
                data = super().clean() or {}
                if self.errors or not (data.get("value") or not self.instance.pk):
                    return data
                try:
                    services.credential_check(
                        name=data.get("name", self.instance.name),
                        kind=data.get("kind", self.instance.kind),
                        header_name=data.get("header_name", self.instance.header_name),
                        secret=data.get("value", ""),
                        new=not self.instance.pk,
                    )
                except VigilError as exc:
                    _form_errors(self, exc)
                return data

        return Checked


class EndpointForm(forms.ModelForm):
    url = forms.CharField(max_length=500, help_text="http(s); checked against the operator's egress rules")
    kinds_text = forms.CharField(
        label="Kinds", help_text=f"comma-separated: {', '.join(ENDPOINT_KINDS)}", max_length=500
    )
    signing_key = _secret_field(
        "signs every request (16 characters or more); never shown again: leave it empty to keep the current one"
    )

    class Meta:
        model = Endpoint
        fields = ["name", "url", "credential", "enabled", "timeout_seconds"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            if "name" in self.fields:
                self.fields["name"].disabled = True
            if "kinds_text" in self.fields:
                self.fields["kinds_text"].initial = ", ".join(self.instance.kinds)
        elif "signing_key" in self.fields:
            self.fields["signing_key"].required = True

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        data["kinds"] = [k.strip() for k in data.get("kinds_text", "").split(",") if k.strip()]
        credential = data.get("credential")
        errors = services.endpoint_errors(
            url=data.get("url"),
            kinds=data["kinds"],
            timeout_seconds=data.get("timeout_seconds"),
            credential=credential.name if credential else None,
            enabled=bool(data.get("enabled")),
            signing_secret=data.get("signing_key") or None,
            but=self.instance.pk,
        )
        form_names = {"kinds": "kinds_text", "signing_secret": "signing_key"}
        for key, message in errors.items():
            self.add_error(form_names.get(key, key) if key != "name" else None, message)
        return data


@admin.register(Endpoint)
class EndpointAdmin(AccessAdminMixin, admin.ModelAdmin):
    access_view = access_add = access_change = access_delete = ADMIN
    form = EndpointForm
    fields = (
        "name",
        "url",
        "kinds_text",
        "credential",
        "enabled",
        "timeout_seconds",
        "signing_key",
        "created_at",
        "updated_at",
    )
    list_display = ("name", "url", "kinds", "credential", "enabled", "updated_at")
    list_filter = ("enabled",)
    readonly_fields = ("created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: Endpoint, form: Any, change: bool) -> None:
        data, actor = form.cleaned_data, Actor.for_user(request.user)
        credential = data["credential"].name if data.get("credential") else None
        fields = {
            "url": data["url"],
            "kinds": data["kinds"],
            "credential": credential,
            "enabled": data["enabled"],
            "timeout_seconds": data["timeout_seconds"],
        }
        if not change:
            created = services.endpoint_create(
                name=data["name"], signing_secret=data["signing_key"], actor=actor, **fields
            )
            obj.pk, obj._state.adding = created.pk, False
            return
        services.endpoint_update(name=obj.name, actor=actor, signing_secret=data.get("signing_key") or None, **fields)

    def delete_model(self, request: HttpRequest, obj: Endpoint) -> None:
        services.endpoint_delete(name=obj.name, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            self.delete_model(request, endpoint)
