"""Encryption of the secrets Vigil stores: tenants' credentials and signing secrets, the
operators' LLM keys. Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with the keys of
VIGIL_CREDENTIALS_KEY, never stored in the database: a dump of it reveals no secret.

VIGIL_CREDENTIALS_KEY holds one or more Fernet keys, comma-separated. The first encrypts, every
one decrypts, so a key is rotated by putting the new one first, running
``manage.py rotate_credentials_key`` (re-encrypts every stored secret) and then removing the old
one. Production refuses to start without it (config/settings.py); development mode creates a
key once under .run/ so that the web process, the workers and the tests of one checkout agree.

Lives in config because the tenants app (operators' keys) and agents (tenants' credentials)
both encrypt and tenants may not import agents; agents/integrations/secrets.py re-exports it.
"""

from __future__ import annotations

import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEVELOPMENT_KEY_FILE = "credentials.key"


class SecretUnreadable(Exception):
    """A stored secret that none of the configured keys decrypts (the key it was encrypted
    with was removed from VIGIL_CREDENTIALS_KEY, or the value was altered). The message never
    carries the token."""


def _development_key() -> str:
    """The checkout's own key under .run/, created once (O_EXCL: concurrent first uses agree)."""
    path = settings.BASE_DIR / ".run" / DEVELOPMENT_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(Fernet.generate_key().decode())
    for _ in range(100):  # a concurrent creator may not have written it yet
        key = path.read_text().strip()
        if key:
            return key
    raise ImproperlyConfigured(f"{path} is empty: delete it to create a new development key")


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = list(settings.VIGIL_CREDENTIALS_KEYS)
    if not keys:
        if not settings.DEVELOPMENT:
            raise ImproperlyConfigured("VIGIL_CREDENTIALS_KEY is not set")
        keys = [_development_key()]
    fernets = []
    for position, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            raise ImproperlyConfigured(
                f"VIGIL_CREDENTIALS_KEY: key {position} is not a Fernet key (32 url-safe base64-encoded bytes; make "
                "one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None
    return MultiFernet(fernets)


def secrets_reset() -> None:
    """Forget the cached keys (after the settings changed: tests, key rotation)."""
    _fernet.cache_clear()


def secret_encrypt(plaintext: str) -> str:
    """The token to store for ``plaintext``, encrypted with the current (first) key."""
    return _fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    """The plaintext of a stored token. Raises SecretUnreadable, which names no secret."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise SecretUnreadable("a stored secret cannot be decrypted with the keys of VIGIL_CREDENTIALS_KEY") from None


def secret_rotate(token: str) -> str:
    """``token`` re-encrypted with the current key (decrypted with whichever key reads it)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise SecretUnreadable("a stored secret cannot be decrypted with the keys of VIGIL_CREDENTIALS_KEY") from None
