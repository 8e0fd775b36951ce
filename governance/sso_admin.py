"""The tenant's single sign-on provider in the tenant admin: admins only. The client secret is
write-only (an empty field keeps the stored one); every save goes through
governance.sso.sso_provider_save, which checks the issuer against the egress rules, encrypts
the secret and audits the change. Changes are kept in the provider's history (django-simple-history) with
who and why, without the secret."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from config.egress import EgressRefused, egress_check
from config.errors import VigilError
from governance.access import Capability
from governance.history_admin import GovernedHistoryAdmin
from governance.models import SsoIdentity, SsoProvider
from governance.sso import WHAT, SsoInvalid, _mapping_check


class SsoProviderForm(forms.ModelForm):
    issuer = forms.URLField(
        max_length=500, assume_scheme="https", help_text=SsoProvider._meta.get_field("issuer").help_text
    )
    client_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="write-only: stored encrypted, never shown; leave empty to keep the stored one",
    )

    class Meta:
        model = SsoProvider
        fields = [
            "name",
            "issuer",
            "client_id",
            "client_secret",
            "scopes",
            "tid",
            "role_mapping",
            "link_verified_email",
            "enabled",
        ]

    def clean_issuer(self) -> str:
        issuer = str(self.cleaned_data.get("issuer") or "").strip().rstrip("/")
        try:
            egress_check(issuer, what=WHAT)
        except EgressRefused as exc:
            raise forms.ValidationError(exc.detail) from None
        return issuer

    def clean_role_mapping(self) -> Any:
        try:
            return _mapping_check(self.cleaned_data.get("role_mapping"))
        except SsoInvalid as exc:
            raise forms.ValidationError(exc.detail) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.instance.pk and not cleaned.get("client_secret"):
            self.add_error("client_secret", "give the client secret")
        return cleaned


class SsoProviderAdmin(GovernedHistoryAdmin):
    """Its history pages show every change with who and the reason the form required, never
    the secret (not a field of the history); reverting from them is refused."""

    form = SsoProviderForm
    list_display = ["name", "issuer", "client_id", "tid", "enabled", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]

    def _admin(self, request: HttpRequest) -> bool:
        from governance import access

        return access.user_may(request.user, Capability.MANAGE_USERS)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._admin(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._admin(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._admin(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # disable it instead: the audit trail keeps naming it

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request: HttpRequest, obj: SsoProvider, form: Any, change: bool) -> None:
        from governance.sso import sso_provider_save

        try:
            sso_provider_save(
                provider=obj,
                client_secret=form.cleaned_data.get("client_secret") or None,
                actor=request.user,
                changed=list(form.changed_data),
            )
        except VigilError as exc:
            raise forms.ValidationError(exc.detail) from None

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except forms.ValidationError as exc:
            from django.contrib import messages
            from django.http import HttpResponseRedirect

            messages.error(request, f"Not saved: {'; '.join(exc.messages)}")
            return HttpResponseRedirect(request.get_full_path())


class SsoIdentityAdmin(admin.ModelAdmin):
    """Who is who at the provider (issuer and subject → user), for admins: read-only; deleting
    one unlinks it (governance.sso.sso_identity_unlink, audited), so that the person's next
    sign-in is a first one again."""

    list_display = ["subject", "user", "email", "issuer", "created_at", "last_sign_in_at"]
    list_select_related = ["user"]
    search_fields = ["subject", "email", "user__username"]
    readonly_fields = ("user", "provider", "issuer", "subject", "email", "created_at", "last_sign_in_at")
    fields = readonly_fields

    def _admin(self, request: HttpRequest) -> bool:
        from governance import access

        return access.user_may(request.user, Capability.MANAGE_USERS)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._admin(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._admin(request)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one by one, each audited
        return actions

    def delete_model(self, request: HttpRequest, obj: SsoIdentity) -> None:
        from governance.sso import sso_identity_unlink

        sso_identity_unlink(identity=obj, actor=request.user)
