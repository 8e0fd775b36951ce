"""The API's bearer authentication with the tenant's identity provider: an OIDC access token
(a JWT the provider signed for this tenant's client), checked by governance.sso. It comes
after governance.authentication.ApiTokenAuthentication, which leaves it every ``Bearer``
credential that is not one of our own tokens."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request


class OidcAccessTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            return None
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the token is not ASCII.") from None
        # Imported here: DRF imports this class while config.errors is still importing DRF's views.
        from governance.sso import SsoError, bearer_authenticate

        if raw.count(".") != 2:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        try:
            found = bearer_authenticate(raw)
        except SsoError as exc:
            raise exceptions.AuthenticationFailed(f"Invalid access token: {exc.detail}") from None
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return found

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
