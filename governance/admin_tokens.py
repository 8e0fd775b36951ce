"""API tokens in the tenant admin: each user sees and revokes their own, admins everyone's in
the tenant. Issuing shows the token on the page that answers the form, once; it is never
stored or shown again. Tokens are revoked, never deleted, so their history stays readable."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from governance import access, tokens
from governance.access import Capability
from governance.models import ApiToken


class TokenIssueForm(forms.ModelForm):
    expires_in_days = forms.IntegerField(
        min_value=1,
        initial=settings.VIGIL_API_TOKEN_DAYS,
        help_text="how long the token works; at most VIGIL_API_TOKEN_MAX_DAYS",
    )

    class Meta:
        model = ApiToken
        fields = ["name"]

    def clean_expires_in_days(self) -> int:
        days = int(self.cleaned_data["expires_in_days"])
        if days > settings.VIGIL_API_TOKEN_MAX_DAYS:
            raise forms.ValidationError(f"at most {settings.VIGIL_API_TOKEN_MAX_DAYS} days")
        return days


@admin.action(description="Revoke the selected tokens")
def revoke_selected(model_admin: ApiTokenAdmin, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
    admin_user = access.user_may(request.user, Capability.MANAGE_USERS)
    revoked = 0
    for token in queryset.filter(revoked_at__isnull=True):
        tokens.token_revoke(token_id=token.pk, actor=request.user, any_user=admin_user)
        revoked += 1
    model_admin.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)


class ApiTokenAdmin(admin.ModelAdmin):
    form = TokenIssueForm
    list_display = ["name", "prefix", "user", "state", "created_at", "expires_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["name", "prefix", "user", "created_at", "expires_at", "last_used_at", "revoked_at"]
    actions = [revoke_selected]
    issued_template = "admin/governance/apitoken/issued.html"

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        return "expired" if token.expires_at <= timezone.now() else "active"

    def _admin(self, request: HttpRequest) -> bool:
        return access.user_may(request.user, Capability.MANAGE_USERS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        queryset = super().get_queryset(request).select_related("user")
        if not access.user_may(request.user, Capability.VIEW):
            return queryset.none()
        return queryset if self._admin(request) else queryset.filter(user_id=request.user.pk)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.user_may(request.user, Capability.VIEW)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not access.user_may(request.user, Capability.VIEW):
            return False
        return obj is None or obj.user_id == request.user.pk or self._admin(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return access.user_may(request.user, Capability.VIEW)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        if not access.user_may(request.user, Capability.VIEW):
            actions.pop("revoke_selected", None)
        return actions

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ["name", "expires_in_days"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        issued = tokens.token_issue(
            user=request.user, name=form.cleaned_data["name"], expires_in_days=form.cleaned_data["expires_in_days"]
        )
        obj.pk, obj.user, obj.prefix = issued.token.pk, issued.token.user, issued.token.prefix
        request.vigil_issued_token = issued.secret  # type: ignore[attr-defined]

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"API token {obj.name}",
            "token": obj,
            "secret": getattr(request, "vigil_issued_token", ""),
        }
        # The admin's views are never cached (no-store): the page with the token is not kept.
        return TemplateResponse(request, self.issued_template, context)
