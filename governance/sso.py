"""Single sign-on with the tenant's OpenID Connect provider: its settings, the sign-in through
mozilla-django-oidc, and the provider's access tokens on the API.

mozilla-django-oidc reads one provider from the settings; each tenant has its own
(``SsoProvider``, in the tenant's schema), so the backend and the views (governance.sso_views)
take the issuer, client and secret from the current tenant's row. The issuer is written by
the tenant admin: it, and every endpoint its discovery document names, is fetched only within
the operator's egress rules (config.egress), with a timeout and a size limit.

What a token must say to sign in here, ID token (browser) and access token (API) alike: the
configured issuer, this tenant's client as audience, a signature by a key of the issuer's
JWKS, an expiry in the future, and ``tid`` equal to the tenant's expected value. So a token
minted for tenant A never signs in on B's host, even when both use one provider and one
client. Access tokens must also be typed ``at+jwt`` (RFC 9068): an ID token is no API key.

Who signs in: the person the provider names by issuer and ``sub`` (the only name OIDC keeps
stable), never by email. Each is bound to one user by an ``SsoIdentity`` row:

- a known (issuer, sub) signs in as its user, whatever email the token now carries (emails
  change, and are reassigned: a new person at the provider given an old address must not
  become the old address's user);
- an unknown one with an email no user of the tenant has gets a new user (username = that
  email, no usable password) and the identity; an email the provider says is unverified
  (``email_verified`` false) is refused;
- an unknown one whose email a user of the tenant already has (a local user, or one bound to
  another issuer) is refused: taking that user over would hand a password account, its roles
  and its history to whoever the provider lets claim the address. Only when the tenant's
  admin allows it (``SsoProvider.link_verified_email``) AND the token says
  ``email_verified: true`` is the existing user bound to the identity (audited as
  ``sso.identity_linked``). A user already bound to another subject of the same issuer is never
  linked: that address now belongs to someone else there.

Their roles are set from the claims by the tenant's mapping at every sign-in (audited when
they change). Bearer access tokens on the API find their user the same way.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import jwt
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from config.egress import EgressRefused, egress_check, pinned_connection
from config.errors import VigilError
from config.secrets import SecretUnreadable, secret_decrypt, secret_encrypt
from governance import access, roles
from governance.actors import Actor
from governance.models import SsoIdentity, SsoProvider
from governance.services import audit_record

logger = logging.getLogger(__name__)

WHAT = "the identity provider"
TIMEOUT_SECONDS = 5
MAX_DOCUMENT_BYTES = 256 * 1024
DISCOVERY_SECONDS = 3600
JWKS_SECONDS = 300
JWKS_REFRESH_SECONDS = 60  # at most one refetch of a provider's keys per minute
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
LEEWAY_SECONDS = 30


class SsoError(VigilError):
    """A sign-in or token the provider settings refuse; the message names the reason."""

    code = "sso_refused"
    status = 401


class SsoInvalid(VigilError):
    code = "invalid_sso_provider"
    status = 400


# ------------------------------------------------------------------ the provider's settings
def sso_provider() -> SsoProvider | None:
    """The current tenant's enabled provider, if any."""
    return SsoProvider.objects.filter(enabled=True).first()


def _mapping_check(mapping: Any) -> dict[str, dict[str, str]]:
    if not isinstance(mapping, dict) or not all(
        isinstance(claim, str) and isinstance(table, dict) and all(isinstance(v, str) for v in table)
        for claim, table in mapping.items()
    ):
        raise SsoInvalid(
            'the role mapping must map a claim to {value: role}, e.g. {"groups": {"vigil-admins": "admin"}}',
            field="role_mapping",
        )
    for table in mapping.values():
        try:
            access.role_codes(table.values())
        except (ValueError, TypeError) as exc:
            raise SsoInvalid(f"the role mapping names {exc}", field="role_mapping") from None
    return mapping


@transaction.atomic
def sso_provider_save(
    *, provider: SsoProvider, client_secret: str | None, actor: Any, changed: list[str] | None = None
) -> SsoProvider:
    """Check and save ``provider`` (a new or changed row), encrypting ``client_secret`` when
    given (None keeps the stored one). The issuer must pass the egress rules. Audited as
    ``sso.provider_saved`` without the secret, by ``actor`` (a user, or an Actor: an operator)."""
    provider.issuer = provider.issuer.strip().rstrip("/")
    egress_check(provider.issuer, what=WHAT)
    provider.role_mapping = _mapping_check(provider.role_mapping)
    if "openid" not in provider.scopes.split():
        raise SsoInvalid("the scopes must include openid", field="scopes")
    if client_secret is not None:
        if not client_secret:
            raise SsoInvalid("the client secret must not be empty", field="client_secret")
        provider.client_secret_encrypted = secret_encrypt(client_secret)
    if not provider.client_secret_encrypted:
        raise SsoInvalid("give the client secret", field="client_secret")
    created = provider.pk is None
    provider.save()
    audit_record(
        actor=actor if isinstance(actor, Actor) else Actor.for_user(actor),
        verb="sso.provider_saved",
        target_type="sso_provider",
        target_id=provider.pk,
        data={
            "created": created,
            "issuer": provider.issuer,
            "client_id": provider.client_id,
            "tid": provider.tid,
            "enabled": provider.enabled,
            "role_mapping": provider.role_mapping,
            "link_verified_email": provider.link_verified_email,
            "secret_changed": client_secret is not None,
            "changed": changed or [],
        },
    )
    return provider


@transaction.atomic
def sso_identity_unlink(*, identity: SsoIdentity, actor: Any) -> None:
    """Forget which Vigil user a person at the provider is: their next sign-in is a first one
    again (refused while their email is a user's, unless linking is allowed). Audited."""
    user_id, issuer, subject = identity.user_id, identity.issuer, identity.subject
    identity.delete()
    audit_record(
        actor=actor if isinstance(actor, Actor) else Actor.for_user(actor),
        verb="sso.identity_unlinked",
        target_type="user",
        target_id=user_id,
        data={"issuer": issuer, "sub": subject},
    )


# ------------------------------------------------------------------ the provider over HTTP
@dataclass(frozen=True)
class _Answer:
    status_code: int
    content: bytes


def _fetch(
    method: str, url: str, *, data: dict[str, Any] | None = None, auth: tuple[str, str] | None = None
) -> _Answer:
    """One call to the provider, connected to the address the egress check passed (never
    resolved again: no DNS rebinding), without redirects, within TIMEOUT_SECONDS for the whole
    call (config.egress: a provider dripping its answer cannot hold the sign-in longer) and
    MAX_DOCUMENT_BYTES of answer."""
    target = egress_check(url, what=WHAT)
    headers = {"Accept": "application/json", "User-Agent": "Vigil-SSO/1"}
    body: bytes | None = None
    if data is not None:
        body = urlencode(data).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if auth is not None:  # client_secret_basic (RFC 6749 2.3.1)
        pair = f"{quote(auth[0], safe='')}:{quote(auth[1], safe='')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    conn = pinned_connection(target, timeout=TIMEOUT_SECONDS)
    try:
        conn.request(method, target.path, body=body, headers=headers)
        response = conn.getresponse()
        content = response.read(MAX_DOCUMENT_BYTES + 1)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise SsoError(f"{WHAT} at {url} did not answer: {type(exc).__name__}") from None
    finally:
        conn.close()
    if len(content) > MAX_DOCUMENT_BYTES:
        raise SsoError(f"{WHAT} answered {url} with more than {MAX_DOCUMENT_BYTES} bytes")
    return _Answer(status_code=status, content=content)


def _json(response: _Answer, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise SsoError(f"{WHAT} answered {what} with status {response.status_code}")
    try:
        document = json.loads(response.content)
    except ValueError:
        raise SsoError(f"{WHAT} answered {what} with something that is not JSON") from None
    if not isinstance(document, dict):
        raise SsoError(f"{WHAT} answered {what} with something that is not a JSON object")
    return document


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def discovery(provider: SsoProvider) -> Discovery:
    """The provider's endpoints from its .well-known document (cached an hour per issuer)."""
    key = f"vigil:sso:discovery:{provider.issuer}"
    document = cache.get(key)
    if document is None:
        document = _json(_fetch("GET", f"{provider.issuer}/.well-known/openid-configuration"), "its discovery document")
        cache.set(key, document, DISCOVERY_SECONDS)
    if str(document.get("issuer", "")).rstrip("/") != provider.issuer:
        raise SsoError(f"{WHAT}'s discovery document names issuer {document.get('issuer')!r}, not {provider.issuer!r}")
    try:
        return Discovery(
            issuer=str(document["issuer"]),
            authorization_endpoint=str(document["authorization_endpoint"]),
            token_endpoint=str(document["token_endpoint"]),
            jwks_uri=str(document["jwks_uri"]),
        )
    except KeyError as exc:
        raise SsoError(f"{WHAT}'s discovery document has no {exc.args[0]}") from None


def _jwks(provider: SsoProvider, *, fresh: bool = False) -> list[dict[str, Any]]:
    key = f"vigil:sso:jwks:{provider.issuer}"
    keys = cache.get(key)
    # A token naming an unknown key refetches the set (the provider may have rotated), at most
    # once a minute per issuer: unsigned garbage must not turn into one outbound call each.
    if fresh and keys is not None and cache.add(f"{key}:refreshed", True, JWKS_REFRESH_SECONDS):
        keys = None
    if keys is None:
        keys = _json(_fetch("GET", discovery(provider).jwks_uri), "its JWKS").get("keys")
        if not isinstance(keys, list):
            raise SsoError(f"{WHAT}'s JWKS has no keys")
        cache.set(key, keys, JWKS_SECONDS)
    return keys


def _signing_key(provider: SsoProvider, token: str) -> tuple[Any, str]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise SsoError("the token is not a signed JWT") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise SsoError(f"the token is signed with {alg!r}, not an algorithm of a key pair")
    for fresh in (False, True):  # a key not in the cached set: the provider may have rotated
        for jwk in _jwks(provider, fresh=fresh):
            if (kid is None or jwk.get("kid") == kid) and jwk.get("alg", alg) == alg and jwk.get("use", "sig") == "sig":
                try:
                    return jwt.PyJWK(jwk, algorithm=alg).key, alg
                except jwt.PyJWTError:
                    continue
    raise SsoError(f"no key of {WHAT}'s JWKS signed this token")


def token_verify(provider: SsoProvider, token: str, *, access_token: bool = False) -> dict[str, Any]:
    """The claims of ``token`` once its signature, issuer, audience (the tenant's client),
    expiry and tid are checked; SsoError naming the first failure otherwise."""
    if access_token:
        try:
            typ = str(jwt.get_unverified_header(token).get("typ", "")).lower()
        except jwt.PyJWTError:
            raise SsoError("the token is not a signed JWT") from None
        if typ not in ("at+jwt", "application/at+jwt"):
            raise SsoError("the bearer token is not an access token (its type is not at+jwt)")
    key, alg = _signing_key(provider, token)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=provider.client_id,
            issuer=provider.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.InvalidAudienceError:
        raise SsoError("the token was issued for another client") from None
    except jwt.InvalidIssuerError:
        raise SsoError("the token was issued by another issuer") from None
    except jwt.ExpiredSignatureError:
        raise SsoError("the token has expired") from None
    except jwt.PyJWTError as exc:
        raise SsoError(f"the token is invalid: {exc}") from None
    if claims.get("tid") != provider.tid:
        raise SsoError("the token was minted for another tenant (its tid claim is not this tenant's)")
    if access_token and claims.get("client_id", provider.client_id) != provider.client_id:
        raise SsoError("the token was issued for another client")
    return claims


# ------------------------------------------------------------------------- users and roles
def roles_from_claims(mapping: dict[str, dict[str, str]], claims: dict[str, Any]) -> list[str]:
    wanted = set()
    for claim, table in mapping.items():
        values = claims.get(claim)
        for value in [values] if isinstance(values, str) else values if isinstance(values, list) else []:
            if isinstance(value, str) and value in table:
                wanted.add(table[value])
    return access.role_codes(wanted)


def _email(claims: dict[str, Any]) -> str | None:
    """The claims' email, normalised; None when they carry no usable one."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email.strip()) > 150:
        return None
    return email.strip().lower()


def _subject(claims: dict[str, Any]) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SsoError("the token carries no usable sub claim")
    return subject


def _identity_new(provider: SsoProvider, claims: dict[str, Any], *, subject: str) -> SsoIdentity:
    """The first sign-in of (issuer, ``subject``): a new user, or, when the provider's settings
    allow it and the email is verified, the existing user with that email (see the module's
    docstring). SsoError names the refusal."""
    email = _email(claims)
    if email is None:
        raise SsoError("the token carries no usable email claim, which a first sign-in needs to name the user")
    verified = claims.get("email_verified")
    user_model = get_user_model()
    user = user_model.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).order_by("pk").first()
    if user is None:
        if verified is False:
            raise SsoError("the provider has not verified this email address")
        name = str(claims.get("name") or "")[:150]
        user = user_model.objects.create_user(email, email=email, first_name=name)
        user.set_unusable_password()
        user.save(update_fields=["password"])
        verb = "sso.user_created"
    else:
        same = SsoIdentity.objects.select_related("user").filter(issuer=provider.issuer, subject=subject).first()
        if same is not None:  # a first sign-in of the same person at the same time bound it
            return same
        if not provider.link_verified_email:
            raise SsoError(
                "a Vigil user with this email already exists and is not linked to this sign-in; an admin may "
                "allow linking users by verified email in the single sign-on provider's settings"
            )
        if verified is not True:
            raise SsoError(
                "a Vigil user with this email already exists and the provider has not verified the email: "
                "it is not linked to this sign-in"
            )
        if SsoIdentity.objects.filter(user=user, issuer=provider.issuer).exists():
            raise SsoError("the Vigil user with this email is linked to another person at this provider")
        verb = "sso.identity_linked"
    identity = SsoIdentity.objects.create(
        user=user, provider=provider, issuer=provider.issuer, subject=subject, email=email
    )
    audit_record(
        actor=Actor.system("sso"),
        verb=verb,
        target_type="user",
        target_id=user.pk,
        data={"username": user.username, "email": email, "issuer": provider.issuer, "sub": subject},
    )
    return identity


def _identity(provider: SsoProvider, claims: dict[str, Any]) -> SsoIdentity:
    subject = _subject(claims)
    found = SsoIdentity.objects.select_related("user").filter(issuer=provider.issuer, subject=subject).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():  # two first sign-ins at once: one creates, the other finds
            return _identity_new(provider, claims, subject=subject)
    except IntegrityError:
        found = SsoIdentity.objects.select_related("user").filter(issuer=provider.issuer, subject=subject).first()
        if found is None:
            raise SsoError("another sign-in was creating this user at the same time; try again") from None
        return found


@transaction.atomic
def sso_user(provider: SsoProvider, claims: dict[str, Any], *, via: str) -> User:
    """The tenant's user the verified ``claims`` name by (issuer, sub): bound at the first
    sign-in (module docstring), with the roles the mapping gives them. ``via`` ("login",
    "api") goes in the audit."""
    identity = _identity(provider, claims)
    user = identity.user
    if not user.is_active:
        raise SsoError("this user is deactivated in Vigil")
    email = _email(claims)
    if via == "login" or (email and email != identity.email):
        # The user keeps the username of the first sign-in; the identity notes the address.
        identity.email, identity.last_sign_in_at = email or identity.email, timezone.now()
        identity.save(update_fields=["email", "last_sign_in_at"])
    wanted = roles_from_claims(provider.role_mapping, claims)
    roles.user_roles_set(user=user, roles=wanted, actor=user)
    if via == "login":
        audit_record(
            actor=Actor.for_user(user),
            verb="sso.signed_in",
            target_type="user",
            target_id=user.pk,
            data={"issuer": provider.issuer, "sub": identity.subject, "email": email, "roles": wanted},
        )
    return user


def sso_refusal_record(request: HttpRequest | None, reason: str) -> None:
    audit_record(
        actor=Actor.system("sso"),
        verb="sso.refused",
        target_type="sso_provider",
        data={"reason": reason[:500], "ip": (request.META.get("REMOTE_ADDR", "") if request else "")},
    )


# ----------------------------------------------------------------- mozilla-django-oidc's backend
# Settings of mozilla-django-oidc that are the same for every tenant.
FIXED_SETTINGS: dict[str, Any] = {
    "OIDC_USE_PKCE": True,
    "OIDC_USE_NONCE": True,
    "OIDC_TOKEN_USE_BASIC_AUTH": True,
    "OIDC_CREATE_USER": True,
    "OIDC_STORE_ACCESS_TOKEN": False,
    "OIDC_STORE_ID_TOKEN": False,
    "OIDC_TIMEOUT": TIMEOUT_SECONDS,
}
REQUEST_ERROR = "vigil_sso_error"


class TenantOidcBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's code flow, with the current tenant's provider instead of the
    settings' one, and our checks of the ID token (governance.sso.token_verify)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The parent reads one provider from the settings; ours is read per request.
        self.UserModel = get_user_model()
        self.provider: SsoProvider | None = None

    def get_settings(self, attr: str, *args: Any) -> Any:
        if attr in FIXED_SETTINGS:
            return FIXED_SETTINGS[attr]
        if attr == "OIDC_RP_SCOPES" and self.provider is not None:
            return self.provider.scopes
        return super().get_settings(attr, *args)

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        if request is None or "nonce" not in kwargs:
            return None  # not the OIDC callback: a password sign-in
        provider = sso_provider()
        if provider is None:
            return None
        self.provider = provider
        try:
            found = discovery(provider)
            self.OIDC_OP_TOKEN_ENDPOINT = found.token_endpoint
            self.OIDC_RP_CLIENT_ID = provider.client_id
            self.OIDC_RP_CLIENT_SECRET = secret_decrypt(provider.client_secret_encrypted)
            return super().authenticate(request, **kwargs)
        except (SsoError, EgressRefused, SecretUnreadable, SuspiciousOperation, requests.HTTPError) as exc:
            reason = exc.detail if isinstance(exc, VigilError) else str(exc).split(" (url:")[0]
            setattr(request, REQUEST_ERROR, reason)
            sso_refusal_record(request, reason)
            logger.warning("sso.refused", extra={"reason": reason})
            return None

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        client_id, secret = payload.pop("client_id"), payload.pop("client_secret")
        response = _fetch("POST", self.OIDC_OP_TOKEN_ENDPOINT, data=payload, auth=(client_id, secret))
        return _json(response, "the token request")

    def _provider(self) -> SsoProvider:
        if self.provider is None:
            raise SsoError("no single sign-on provider is configured")
        return self.provider

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        if not token:
            raise SsoError("the provider answered without an ID token")
        claims = token_verify(self._provider(), token)
        if claims.get("nonce") != kwargs.get("nonce"):
            raise SsoError("the ID token's nonce is not the one this sign-in sent")
        return claims

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        return payload  # the verified ID token's claims: email, name, groups, tid

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        _subject(claims)
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(
            sso_identities__issuer=self._provider().issuer, sso_identities__subject=_subject(claims)
        )

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        return sso_user(self._provider(), payload, via="login")


def bearer_authenticate(raw: str) -> tuple[User, dict[str, Any]] | None:
    """The user an access token of the tenant's provider stands for, with its claims; None
    when the tenant has no provider (the token is then nobody's). SsoError when refused."""
    provider = sso_provider()
    if provider is None:
        return None
    try:
        claims = token_verify(provider, raw, access_token=True)
    except EgressRefused as exc:
        raise SsoError(exc.detail) from None
    return sso_user(provider, claims, via="api"), claims
