"""`make demo`: migrate, provision the demo tenant, start web + worker + beat, print where.

Runs after `python -m config.services start`. Ctrl-C stops every process it started (the
database and Redis keep running; `make services-stop` stops them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config.oidc_provider import DEMO_PORT as SSO_PORT
from config.oidc_provider import demo_sso_arguments

BASE_DIR = Path(__file__).resolve().parent.parent
PY = sys.executable
DEMO_PASSWORD = os.environ.get("VIGIL_DEMO_PASSWORD", "vigil-demo-pass")
OPERATOR = "operator@localhost"
TENANT_DOMAIN = "acme.localhost"
ADMIN = "admin@acme.localhost"
RECEIVER_PORT = os.environ.get("VIGIL_DEMO_RECEIVER_PORT", "8099")
# The demo's own secrets: its local receiver's signing secret and its event source's.
RECEIVER_SECRET = "demo-receiver-secret-change-me"  # noqa: S105
EVENT_SECRET = "demo-alertmanager-secret-change-me"  # noqa: S105


def manage(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "manage.py", *args], cwd=BASE_DIR, env=env, check=check, text=True, capture_output=not check
    )


def main() -> int:
    port = os.environ.get("VIGIL_HTTP_PORT", "8000")
    web_workers = os.environ.get("VIGIL_WEB_WORKERS", "3")
    allowed = ",".join(filter(None, [os.environ.get("VIGIL_EGRESS_ALLOW", ""), "127.0.0.1"]))
    env = {
        **os.environ,
        "VIGIL_HTTP_PORT": port,
        "PYTHONUNBUFFERED": "1",
        # The demo's receiver and identity provider listen on this machine.
        "VIGIL_EGRESS_ALLOW": allowed,
        "VIGIL_DEMO_RECEIVER_SECRET": os.environ.get("VIGIL_DEMO_RECEIVER_SECRET", RECEIVER_SECRET),
    }

    print("== migrating (public, tenants and spare schemas) ==", flush=True)
    manage("migrate_tenants", env=env)
    print("== warm pool ==", flush=True)
    manage("fill_spare_pool", env=env)

    listed = manage("list_tenants", "--json", env=env, check=False)
    if f'"{TENANT_DOMAIN}"' not in listed.stdout:
        manage(
            "provision_tenant",
            "--name",
            "Acme Support",
            "--domain",
            TENANT_DOMAIN,
            "--tier",
            "professional",
            "--admin-email",
            ADMIN,
            "--admin-password",
            DEMO_PASSWORD,
            "--demo",
            env=env,
        )
    operator_env = {**env, "DJANGO_SUPERUSER_PASSWORD": DEMO_PASSWORD}
    manage(
        "createsuperuser", "--noinput", "--username", OPERATOR, "--email", OPERATOR, env=operator_env, check=False
    )  # exists already on a second run
    print("== help-center knowledge base ==", flush=True)
    # Embedded here, before the workers start; a second run finds the same content and skips it.
    manage("ingest", "--tenant", "acme", "--collection", "help-center", "knowledge/corpus/help_center", env=env)

    print("== integrations: receiver endpoint, Alertmanager source, single sign-on ==", flush=True)
    manage("demo_endpoint", "--domain", TENANT_DOMAIN, "--url", f"http://127.0.0.1:{RECEIVER_PORT}/hooks", env=env)
    manage(
        "event_source",
        "--domain",
        TENANT_DOMAIN,
        "add",
        "alertmanager",
        "--agent",
        "ops-bot",
        "--kind",
        "alertmanager",
        "--secret",
        EVENT_SECRET,
        env=env,
        check=False,
    )  # exists already on a second run
    sso_arguments, sso_env = demo_sso_arguments()
    manage(*sso_arguments, env={**env, **sso_env})

    procs = {
        "receiver": subprocess.Popen(
            [PY, "-m", "config.demo_receiver", "--port", RECEIVER_PORT], cwd=BASE_DIR, env=env
        ),
        "sso": subprocess.Popen(
            [PY, "-m", "config.oidc_provider", "demo", "--port", str(SSO_PORT), "--web-port", port],
            cwd=BASE_DIR,
            env=env,
        ),
        "web": subprocess.Popen(
            [
                PY,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--workers",
                web_workers,
                "--no-access-log",
            ],
            cwd=BASE_DIR,
            env=env,
        ),
        "worker": subprocess.Popen(
            [PY, "-m", "celery", "-A", "config", "worker", "-Q", "steps,housekeeping,relay", "--loglevel", "INFO"],
            cwd=BASE_DIR,
            env=env,
        ),
        "beat": subprocess.Popen(
            [
                PY,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(BASE_DIR / ".run" / "celerybeat-schedule"),
            ],
            cwd=BASE_DIR,
            env=env,
        ),
    }
    # A trickle of sample tasks so the dashboard moves on its own; VIGIL_DEMO_TRAFFIC=0 turns it off.
    if os.environ.get("VIGIL_DEMO_TRAFFIC", "1") != "0":
        procs["traffic"] = subprocess.Popen(
            [PY, "manage.py", "demo_traffic", "--domain", TENANT_DOMAIN], cwd=BASE_DIR, env=env
        )
    time.sleep(2)
    # A queue for the demo reviewer: tasks of mixed priorities that stop at their approval gate.
    manage("demo_queue", "--domain", TENANT_DOMAIN, env=env, check=False)
    print(
        f"""
== Vigil demo is running ==
  Tenant admin (Acme):  http://{TENANT_DOMAIN}:{port}/admin/
      admin     {ADMIN} / {DEMO_PASSWORD}
      reviewer  reviewer@{TENANT_DOMAIN} / {DEMO_PASSWORD}
      viewer    viewer@{TENANT_DOMAIN} / {DEMO_PASSWORD}
      single sign-on: "Log in with Acme SSO" → sso-admin@{TENANT_DOMAIN} / {DEMO_PASSWORD}
                      (also sso-reviewer@…, sso-viewer@…; provider at http://127.0.0.1:{SSO_PORT})
  Operators' admin:     http://localhost:{port}/admin/
      operator  {OPERATOR} / {DEMO_PASSWORD}
  Delivered effects:    http://127.0.0.1:{RECEIVER_PORT}/   (refunds, replies, restarts the relay signed and sent)
  API docs:             http://{TENANT_DOMAIN}:{port}/api/docs/
  Health:               http://localhost:{port}/healthz   http://localhost:{port}/readyz
  Processes: web (uvicorn, {web_workers} workers), celery worker (queues steps, housekeeping, relay), celery beat,
      receiver (the demo's effect endpoint), sso (the demo's OpenID Connect provider),
      demo_traffic (a sample task every few seconds; VIGIL_DEMO_TRAFFIC=0 turns it off)
  Ctrl-C stops them; `make services-stop` stops PostgreSQL and Redis.
""",
        flush=True,
    )

    def stop(*_: object) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        print("demo stopped", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping the demo", file=sys.stderr, flush=True)
                stop()
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
