"""The single sign-on pages of a tenant's domain: mozilla-django-oidc's two views, taking the
provider from the current tenant (governance.sso) instead of the settings. A sign-in that
cannot start or is refused goes back to the admin's login page, which says why."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views import View
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from config.egress import EgressRefused
from governance.sso import FIXED_SETTINGS, REQUEST_ERROR, SsoError, discovery, sso_provider, sso_refusal_record


class OidcAccessTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes governance.sso_authentication (defined here: DRF
    imports the authenticator before drf-spectacular can be imported)."""

    target_class = "governance.sso_authentication.OidcAccessTokenAuthentication"
    name = "oidcAccessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token (RFC 9068 JWT) of the tenant's single sign-on provider, issued to "
            "the tenant's client.",
        }


def _back_to_login(request: HttpRequest, reason: str) -> HttpResponse:
    messages.error(request, f"Single sign-on failed: {reason}")
    return HttpResponseRedirect(reverse("admin:login"))


class SsoLoginView(OIDCAuthenticationRequestView):
    """Sends the browser to the tenant's provider (authorization code flow with PKCE and a nonce)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)  # the parent reads one provider from the settings
        self.scopes = "openid email"

    def get_settings(self, attr: str, *args: Any) -> Any:
        if attr in FIXED_SETTINGS:
            return FIXED_SETTINGS[attr]
        if attr == "OIDC_RP_SCOPES":
            return self.scopes
        if attr == "OIDC_REDIRECT_FIELD_NAME":
            return "next"
        return super().get_settings(attr, *args)

    def get(self, request: HttpRequest) -> HttpResponse:
        provider = sso_provider()
        if provider is None:
            return _back_to_login(request, "this tenant has no single sign-on provider")
        try:
            found = discovery(provider)
        except (SsoError, EgressRefused) as exc:
            sso_refusal_record(request, exc.detail)
            return _back_to_login(request, exc.detail)
        self.OIDC_OP_AUTH_ENDPOINT = found.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = provider.client_id
        self.scopes = provider.scopes
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back: the code is exchanged and the ID token
    checked by governance.sso.TenantOidcBackend."""

    @property
    def success_url(self) -> str:
        return str(self.request.session.get("oidc_login_next") or reverse("admin:index"))

    def login_failure(self) -> HttpResponse:
        reason = getattr(self.request, REQUEST_ERROR, None)
        if reason is None and self.request.GET.get("error"):
            reason = f"the provider answered {self.request.GET['error'][:100]}"
        return _back_to_login(self.request, reason or "the sign-in did not complete; try again")

    def get(self, request: HttpRequest) -> HttpResponse:
        state = request.GET.get("state")
        if state is not None and state not in request.session.get("oidc_states", {}):
            return _back_to_login(request, "this sign-in was not started here, or has already been used")
        return super().get(request)
