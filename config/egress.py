"""The operator's egress rules: which addresses a URL that a tenant admin wrote may reach.

A tenant admin writes the URL (an integration endpoint, a single sign-on issuer), so the URL
alone decides nothing. Public addresses are allowed; private, loopback, link-local (cloud
metadata at 169.254.169.254), multicast, reserved and unspecified ones only when the operator
lists them in VIGIL_EGRESS_ALLOW (hosts, addresses or CIDRs, comma-separated). A host name is
resolved and every address it resolves to is checked.

Lives in config because every app that calls out (agents' integrations, governance's single
sign-on) applies the same rules and governance may not import agents.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from config.errors import VigilError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(VigilError):
    code = "egress_refused"
    status = 400


@dataclass(frozen=True)
class Target:
    """A checked URL: what to connect to (``address``) and what to say (``host``, ``path``)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _allowed_by_operator(host: str, address: IPAddress) -> bool:
    for rule in settings.VIGIL_EGRESS_ALLOW:
        if rule.lower() == host.lower():
            return True
        try:
            network = ipaddress.ip_network(rule, strict=False)
        except ValueError:
            continue
        if address.version == network.version and address in network:
            return True
    return False


# IPv6 prefixes that carry an IPv4 address a gateway may reach: NAT64 (RFC 6052, RFC 8215) and
# IPv4-compatible addresses; 6to4 and Teredo are read by the ipaddress module itself.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::/96"))
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _public(embedded)
    return address.is_global and not address.is_multicast


def url_parts(url: str, *, what: str = "the endpoint") -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL; EgressRefused otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EgressRefused(f"{what} URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressRefused(f"{what} URL must be an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        hint = ": use a credential" if what == "the endpoint" else ""  # endpoints have credentials of their own
        raise EgressRefused(f"{what} URL must not carry credentials{hint}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def resolve(host: str, port: int, *, what: str = "the endpoint") -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise EgressRefused(f"{what} host {host!r} does not resolve") from None
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def egress_check(url: str, *, what: str = "the endpoint") -> Target:
    """Resolve ``url``'s host and check every address against the operator's rules: the target
    to connect to. Raises EgressRefused naming the refused address; ``what`` names the URL in
    the message ("the endpoint", "the identity provider")."""
    scheme, host, port, path = url_parts(url, what=what)
    addresses = resolve(host, port, what=what)
    for address in addresses:
        if not _public(address) and not _allowed_by_operator(host, address):
            raise EgressRefused(
                f"{what} host {host!r} resolves to {address}, a private, loopback or link-local "
                "address the operator does not allow (VIGIL_EGRESS_ALLOW)",
                host=host,
                address=str(address),
            )
    return Target(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


class _DeadlineSocket:
    """A connected socket whose every send and receive gives up at its connection's call
    deadline: a server that drips its answer a byte at a time, each within a read timeout,
    still cannot hold the call past the deadline. Only what http.client uses is provided."""

    def __init__(self, sock: socket.socket, remaining: Callable[[], float]) -> None:
        self._sock = sock
        self._remaining = remaining
        self._io_refs = 0
        self._closed = False

    def _within(self, call: Callable[..., Any], *args: Any) -> Any:
        self._sock.settimeout(self._remaining())
        try:
            return call(*args)
        except TimeoutError:
            self._remaining()  # the deadline's own message, when that is what passed
            raise

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return int(self._within(self._sock.recv_into, buffer, nbytes, flags))

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return bytes(self._within(self._sock.recv, bufsize, flags))

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._within(self._sock.sendall, data, flags)

    def makefile(self, mode: str = "rb", buffering: int | None = None, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError("only binary reading is provided")
        self._io_refs += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"), buffering or io.DEFAULT_BUFFER_SIZE)  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:  # socket.SocketIO's close: the response is done with us
        self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._sock.close()

    def close(self) -> None:
        # As socket.socket: a response still being read keeps the socket open until it is closed.
        self._closed = True
        if self._io_refs <= 0:
            self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _CallDeadline:
    """The connection's ``timeout`` bounds each whole call: connecting, sending the request and
    reading the answer, from the request's first line to the answer's last byte. A kept-alive
    connection starts a new deadline with each request."""

    timeout: Any
    _deadline: float

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        self._deadline = time.monotonic() + float(self.timeout)
        super().putrequest(method, url, *args, **kwargs)  # type: ignore[misc]

    def _remaining(self) -> float:
        left = getattr(self, "_deadline", time.monotonic() + float(self.timeout)) - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the call took longer than its {float(self.timeout):g} seconds")
        return left

    def _socket(self, address: str, port: int) -> socket.socket:
        return socket.create_connection((address, port), self._remaining())


class _PinnedHTTPConnection(_CallDeadline, http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        sock = self._socket(self._address, self.port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = _DeadlineSocket(sock, self._remaining)


class _PinnedHTTPSConnection(_CallDeadline, http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = self._socket(self._address, self.port)
        sock.settimeout(self._remaining())  # the TLS handshake too
        tls = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
        self.sock = _DeadlineSocket(tls, self._remaining)


def pinned_connection(target: Target, *, timeout: float) -> http.client.HTTPConnection:
    """A connection to the address ``egress_check`` passed, never resolved again (so a name that
    re-resolves elsewhere in between, DNS rebinding, reaches nothing new), speaking to the URL's
    host (the Host header, TLS server name and certificate).

    ``timeout`` is each call's deadline, not a timeout per read: connecting, sending and reading
    the whole answer end within it, or the call raises TimeoutError (an OSError). A server that
    drips its answer cannot hold the caller (and whatever the caller holds: a relay's row
    locks) any longer."""
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, timeout)
    return _PinnedHTTPConnection(target, timeout)
