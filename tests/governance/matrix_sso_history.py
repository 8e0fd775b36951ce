"""Access-matrix entries of the single sign-on provider's history pages
(governance.sso_admin on governance.history_admin): admins read each old version; nobody
reverts one (it would bypass governance.sso.sso_provider_save's checks and audit)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

ADMINS = frozenset({"admin"})
NOBODY: frozenset[str] = frozenset()

ADMIN: dict[tuple[str, str], Any] = {
    ("governance_ssoprovider_simple_history", "get"): ADMINS,
    ("governance_ssoprovider_simple_history", "post"): NOBODY,  # no revert
}


def _record_url(world: Any) -> str:
    from governance.models import SsoProvider

    provider = SsoProvider.objects.first() or SsoProvider.objects.create(
        issuer="https://idp.example", client_id="matrix", client_secret_encrypted="-", tid="acme", enabled=False
    )
    record = provider.history.order_by("history_id").first()
    assert record is not None
    return reverse("admin:governance_ssoprovider_simple_history", args=[provider.pk, record.history_id])


ADMIN_URLS: dict[str, Any] = {"governance_ssoprovider_simple_history": _record_url}
ADMIN_BODIES: dict[str, Any] = {
    "governance_ssoprovider_simple_history": lambda world: {
        "name": "reverted",
        "issuer": "https://idp.example",
        "client_id": "matrix",
        "scopes": "openid",
        "tid": "acme",
        "role_mapping": "{}",
        "history_change_reason": "revert",
    }
}
