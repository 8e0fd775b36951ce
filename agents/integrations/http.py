"""One signed HTTP call to a tenant's endpoint, connected to the address the egress check
passed (never re-resolved), with the credential decrypted for this call only.

Every request carries, besides the credential's header, ``Idempotency-Key`` (the effect's
key, the same on every attempt) and ``Vigil-Signature`` (agents.integrations.signing).
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from dataclasses import dataclass
from typing import Any

from agents.integrations.egress import egress_check
from agents.integrations.secrets import secret_decrypt
from agents.integrations.signing import SIGNATURE_HEADER, signature
from agents.models import Credential, CredentialKind, Endpoint
from config.egress import pinned_connection

USER_AGENT = "Vigil-Relay/1"
# Bytes of an endpoint's answer read at most (a tool's result, an error's excerpt).
MAX_ANSWER_BYTES = 256 * 1024


def _auth_headers(credential: Credential | None) -> dict[str, str]:
    if credential is None:
        return {}
    value = secret_decrypt(credential.secret)
    if credential.kind == CredentialKind.BEARER:
        return {"Authorization": f"Bearer {value}"}
    if credential.kind == CredentialKind.BASIC:
        return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}
    return {credential.header_name: value}


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class EndpointClient:
    """Signed calls to one endpoint over one kept-alive connection, to the address its URL
    resolved to when the client was made (the egress check of this delivery), with the
    credential and the signing secret decrypted for the client's life only. A relay makes one
    per batch and closes it."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.target = egress_check(endpoint.url)
        self.timeout = endpoint.timeout_seconds
        self._secret = secret_decrypt(endpoint.signing_secret)
        self._auth = _auth_headers(endpoint.credential)
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = pinned_connection(self.target, timeout=self.timeout)
        return self._conn

    def post(self, *, body: bytes, idempotency_key: str, attempt: int = 1) -> Answer:
        """POST ``body``: the answer, whatever its status. Raises OSError or HTTPException
        (connection, timeout). A kept-alive connection the server closed meanwhile is opened
        again once (the request may then arrive twice, under the same key)."""
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": idempotency_key,
            "Vigil-Delivery-Attempt": str(attempt),
            SIGNATURE_HEADER: signature(self._secret, timestamp, body),
            **self._auth,
        }
        reused = self._conn is not None
        try:
            return self._send(body, headers)
        except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionError):
            self.close()
            if not reused:
                raise
            return self._send(body, headers)
        except BaseException:
            self.close()
            raise

    def _send(self, body: bytes, headers: dict[str, str]) -> Answer:
        conn = self._connection()
        conn.request("POST", self.target.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_ANSWER_BYTES)
        if response.will_close or not response.isclosed():  # a closing server, or an answer too long to finish
            self.close()
        return Answer(status=response.status, body=data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def endpoint_post(*, endpoint: Endpoint, body: bytes, idempotency_key: str, attempt: int = 1) -> Answer:
    """POST ``body`` to ``endpoint``, signed, on a connection of its own. Raises EgressRefused
    (the URL's host resolves to a refused address now), OSError / http.client.HTTPException
    (connection, timeout), or SecretUnreadable; the answer otherwise, whatever its status."""
    client = EndpointClient(endpoint)
    try:
        return client.post(body=body, idempotency_key=idempotency_key, attempt=attempt)
    finally:
        client.close()
