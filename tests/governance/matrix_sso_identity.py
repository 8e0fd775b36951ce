"""Access-matrix entries of the single sign-on identities in the tenant admin
(governance.sso_admin.SsoIdentityAdmin): admins read them and unlink one (delete); nobody adds
or edits one (they are made by sign-ins)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

ADMINS = frozenset({"admin"})
NOBODY: frozenset[str] = frozenset()

ADMIN: dict[tuple[str, str], Any] = {
    ("governance_ssoidentity_changelist", "get"): ADMINS,
    ("governance_ssoidentity_change", "get"): ADMINS,
    ("governance_ssoidentity_history", "get"): ADMINS,
    ("governance_ssoidentity_delete", "get"): ADMINS,
    ("governance_ssoidentity_add", "get"): NOBODY,
}
ACTIONS: dict[str, dict[str, Any]] = {"governance.ssoidentity": {"delete_selected": NOBODY}}


def _identity_url(view: str) -> Any:
    def url(world: Any) -> str:
        from django.contrib.auth.models import User

        from governance.models import SsoIdentity, SsoProvider

        provider = SsoProvider.objects.first() or SsoProvider.objects.create(
            issuer="https://idp.example", client_id="matrix", client_secret_encrypted="-", tid="acme", enabled=False
        )
        user, _ = User.objects.get_or_create(username="sso-matrix@acme.example")
        identity, _ = SsoIdentity.objects.get_or_create(
            issuer=provider.issuer, subject="matrix", defaults={"user": user, "provider": provider}
        )
        return reverse(f"admin:governance_ssoidentity_{view}", args=[identity.pk])

    return url


ADMIN_URLS: dict[str, Any] = {
    f"governance_ssoidentity_{view}": _identity_url(view) for view in ("change", "history", "delete")
}
