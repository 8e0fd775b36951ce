"""Encryption of stored secrets for the agents app (credentials, signing secrets): the one
implementation in config.secrets, which the tenants app shares for the operators' LLM keys."""

from __future__ import annotations

from config.secrets import SecretUnreadable, secret_decrypt, secret_encrypt, secret_rotate, secrets_reset

__all__ = ["SecretUnreadable", "secret_decrypt", "secret_encrypt", "secret_rotate", "secrets_reset"]
