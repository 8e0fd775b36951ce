"""The API's token authentication: ``Authorization: Bearer <token>``, and ``Token <token>``
as DRF clients send it, both checked by governance.tokens against the current tenant's schema.

A ``Bearer`` credential that is not shaped like one of our tokens is left to the
authenticators after this one (an identity provider's access token); anything sent as
``Token``, and anything shaped like ours, is ours to accept or refuse.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

KEYWORDS = ("bearer", "token")


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower().decode(errors="replace") not in KEYWORDS:
            return None
        keyword = parts[0].lower().decode()
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header: give the keyword and the token, one space apart."
            )
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the token is not ASCII.") from None
        # Imported here: DRF imports this class while config.errors (which tokens uses) is
        # still importing DRF's views.
        from governance.tokens import TOKEN_PREFIX, token_authenticate

        if keyword == "bearer" and not raw.startswith(TOKEN_PREFIX):
            return None
        token = token_authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
