"""Access matrix entries of single sign-on: the two pages of the OIDC code flow (anyone may
start a sign-in or come back from the provider; both end on the login page or in the admin)
and the provider's settings in the admin, for admins only (see
tests/governance/test_access_matrix.py for the tables' formats)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from governance.models import SsoProvider

ADMINS = frozenset({"admin"})
NOBODY: frozenset[str] = frozenset()
PUBLIC = "public"

PAGES: dict[str, Any] = {"oidc_authentication_init": PUBLIC, "oidc_authentication_callback": PUBLIC}

ADMIN: dict[tuple[str, str], Any] = {
    **{(f"governance_ssoprovider_{view}", "get"): ADMINS for view in ("changelist", "add", "change", "history")},
    ("governance_ssoprovider_delete", "get"): NOBODY,  # disabled, never deleted
}
ACTIONS: dict[str, dict[str, Any]] = {"governance.ssoprovider": {"delete_selected": NOBODY}}


def _provider_url(view: str) -> Any:
    def url(world: Any) -> str:
        provider = SsoProvider.objects.first() or SsoProvider.objects.create(
            issuer="https://idp.example", client_id="matrix", client_secret_encrypted="-", tid="acme", enabled=False
        )
        return reverse(f"admin:governance_ssoprovider_{view}", args=[provider.pk])

    return url


ADMIN_URLS: dict[str, Any] = {
    f"governance_ssoprovider_{view}": _provider_url(view) for view in ("change", "history", "delete")
}
