"""The local OpenID Connect provider of the tests and the demo: the npm package oidc-provider
(pinned in config/oidc/package-lock.json) run by node, with config/oidc/provider.mjs.

    python -m config.oidc_provider install        # npm ci into .run/oidc-provider (idempotent)
    python -m config.oidc_provider demo [--port]  # the demo's provider, in the foreground

The tests start their own on a free port (``provider_start``). Nothing here is used in
production: a deployment points its tenants at their real identity provider.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
SOURCE = BASE_DIR / "config" / "oidc"
INSTALL_DIR = BASE_DIR / ".run" / "oidc-provider"
STAMP = ".installed"
DEMO_PORT = 9400
DEMO_PASSWORD = os.environ.get("VIGIL_DEMO_PASSWORD", "vigil-demo-pass")
DEMO_CLIENT_ID = "vigil-acme"
DEMO_CLIENT_SECRET = "acme-demo-client-secret"  # noqa: S105  (the demo's local provider only)
DEMO_TID = "acme"


def _lock_digest() -> str:
    return hashlib.sha256((SOURCE / "package-lock.json").read_bytes()).hexdigest()


def _node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nodejs", "npm"], check=True)
    node = shutil.which("node")
    if not node:
        raise RuntimeError("node is not installed and apt-get could not install it")
    return node


def install() -> Path:
    """Install the provider's packages under .run/ once per version of the lock file."""
    node = _node()
    stamp = INSTALL_DIR / STAMP
    digest = _lock_digest()
    if stamp.exists() and stamp.read_text() == digest and (INSTALL_DIR / "node_modules" / "oidc-provider").is_dir():
        return Path(node)
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(SOURCE / name, INSTALL_DIR / name)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel", "error"],
        cwd=INSTALL_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    stamp.write_text(digest)
    return Path(node)


@dataclass
class ProviderConfig:
    """What the provider serves: its issuer URL and port, clients and users (see provider.mjs)."""

    port: int
    clients: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    host: str = "127.0.0.1"

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    def as_json(self) -> str:
        return json.dumps(
            {"issuer": self.issuer, "port": self.port, "host": self.host, "clients": self.clients, "users": self.users}
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def provider_start(config: ProviderConfig, *, workdir: Path, timeout: float = 30) -> subprocess.Popen[bytes]:
    """Start the provider and wait until it serves its discovery document."""
    node = install()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "oidc-provider.json"
    config_path.write_text(config.as_json())
    log_path = workdir / "oidc-provider.log"
    shutil.copyfile(SOURCE / "provider.mjs", INSTALL_DIR / "provider.mjs")
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(node), str(INSTALL_DIR / "provider.mjs"), str(config_path)],
            cwd=INSTALL_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while True:
        try:
            discovery_url = f"{config.issuer}/.well-known/openid-configuration"  # our own, on loopback
            with urllib.request.urlopen(discovery_url, timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            provider_stop(proc)
            raise RuntimeError(f"the OIDC provider did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def provider_stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def demo_config(*, port: int = DEMO_PORT, web_port: int = 8000, domain: str = "acme.localhost") -> ProviderConfig:
    """The demo's provider: one client for acme's admin and three of acme's people."""
    users = [
        ("sso-admin", "Ada Admin", ["vigil-admins"]),
        ("sso-reviewer", "Remy Reviewer", ["vigil-reviewers"]),
        ("sso-viewer", "Vic Viewer", ["vigil-viewers"]),
    ]
    return ProviderConfig(
        port=port,
        clients=[
            {
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
                "redirect_uris": [f"http://{domain}:{web_port}/oidc/callback/"],
            }
        ],
        users=[
            {
                "login": f"{login}@{domain}",
                "password": DEMO_PASSWORD,
                "email": f"{login}@{domain}",
                "name": name,
                "groups": groups,
                "tid": DEMO_TID,
            }
            for login, name, groups in users
        ],
    )


DEMO_ROLE_MAPPING = {"groups": {"vigil-admins": "admin", "vigil-reviewers": "reviewer", "vigil-viewers": "viewer"}}


def demo_sso_arguments(*, port: int = DEMO_PORT, tenant: str = "acme") -> tuple[list[str], dict[str, str]]:
    """``manage.py`` arguments and extra environment that point ``tenant``'s single sign-on at
    the demo's provider (governance's sso_provider command; the secret goes by environment)."""
    arguments = [
        "sso_provider",
        "--tenant",
        tenant,
        "--issuer",
        f"http://127.0.0.1:{port}",
        "--client-id",
        DEMO_CLIENT_ID,
        "--tid",
        DEMO_TID,
        "--name",
        "Acme SSO",
        "--role-mapping",
        json.dumps(DEMO_ROLE_MAPPING),
    ]
    return arguments, {"VIGIL_SSO_CLIENT_SECRET": DEMO_CLIENT_SECRET, "VIGIL_EGRESS_ALLOW": "127.0.0.1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.oidc_provider", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="install the provider's npm packages under .run/")
    demo = commands.add_parser("demo", help="run the demo's provider in the foreground")
    demo.add_argument("--port", type=int, default=DEMO_PORT)
    demo.add_argument("--web-port", type=int, default=int(os.environ.get("VIGIL_HTTP_PORT", "8000")))
    args = parser.parse_args(argv)
    if args.command == "install":
        install()
        print(f"oidc-provider installed in {INSTALL_DIR}")
        return 0
    proc = provider_start(demo_config(port=args.port, web_port=args.web_port), workdir=BASE_DIR / ".run")
    print(f"OIDC provider running at http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: provider_stop(proc))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        provider_stop(proc)
        return 0


if __name__ == "__main__":
    sys.exit(main())
