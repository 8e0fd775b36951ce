from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from config.connection import connection
from tenants.models import Tenant

from .conftest import append_only_trigger_disable, chain_head, execute, record

BASE_DIR = Path(__file__).resolve().parents[2]


def _verify(**options: str) -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out, **options)
    return out.getvalue()


def test_a_valid_tenant_chain_is_reported_ok(acme: Tenant) -> None:
    connection.set_tenant(acme)
    head_seq, head_hash = chain_head()
    connection.set_schema_to_public()
    out = _verify(tenant="acme")
    assert out.startswith(f"acme: OK, {head_seq} events, head {head_hash[:16]}…")
    assert out.count("\n") == 1
    assert connection.schema_name == "public"


def test_the_public_chain_can_be_checked_by_name(db: None) -> None:
    head_seq, _ = chain_head()
    assert head_seq >= 2, "provisioning acme and beta wrote to the public chain"
    assert _verify(tenant="public").startswith(f"public: OK, {head_seq} events")


def test_without_a_tenant_every_schema_but_the_spares_is_checked(db: None) -> None:
    lines = _verify().splitlines()
    assert all(": OK, " in line for line in lines)
    schemas = [line.split(":")[0] for line in lines]
    assert {"acme", "beta", "public"} <= set(schemas)
    assert schemas == sorted(schemas)
    assert not any(schema.startswith("spare_") for schema in schemas)


def test_a_tampered_chain_raises_a_command_error_naming_the_broken_seq(in_acme: Tenant) -> None:
    start, _ = chain_head()
    record("test.tamper", n=3)
    append_only_trigger_disable()
    k = start + 2
    execute(
        'UPDATE governance_auditevent SET body = replace(body, \'"verb":"test.tamper"\', '
        '\'"verb":"test.forged"\') WHERE seq = %s',
        [k],
    )
    connection.set_schema_to_public()
    out = StringIO()
    with pytest.raises(CommandError, match=rf"^audit chain broken in: acme at seq {k}$"):
        call_command("verify_audit", tenant="acme", stdout=out)
    assert (
        f"acme: BROKEN at seq {k}: hash does not match the event's content ({k - 1} events verified "
        f"before it)" in out.getvalue()
    )


def test_a_tampered_tenant_does_not_hide_the_others(in_acme: Tenant) -> None:
    start, _ = chain_head()
    record("test.tamper", n=2)
    append_only_trigger_disable()
    execute("DELETE FROM governance_auditevent WHERE seq = %s", [start + 1])
    connection.set_schema_to_public()
    out = StringIO()
    with pytest.raises(CommandError, match=rf"^audit chain broken in: acme at seq {start + 1}$"):
        call_command("verify_audit", stdout=out)
    lines = {line.split(":")[0]: line for line in out.getvalue().splitlines()}
    assert lines["acme"].startswith(f"acme: BROKEN at seq {start + 1}: seq {start + 1} expected, found {start + 2}")
    assert lines["beta"].startswith("beta: OK") and lines["public"].startswith("public: OK")


def test_an_unknown_tenant_is_a_command_error(db: None) -> None:
    with pytest.raises(CommandError, match="no tenant with schema 'nosuch'"):
        _verify(tenant="nosuch")


def test_a_spare_schema_is_not_a_tenant_to_verify(db: None) -> None:
    spare = Tenant.objects.filter(status="spare").order_by("pk").first()
    assert spare is not None
    with pytest.raises(CommandError, match=f"no tenant with schema '{spare.schema_name}'"):
        _verify(tenant=spare.schema_name)


def _manage(*args: str) -> subprocess.CompletedProcess[str]:
    s = connection.settings_dict
    url = f"postgres://{quote(s['USER'] or '')}:{quote(s['PASSWORD'] or '')}@{s['HOST']}:{s['PORT']}/{s['NAME']}"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_line_exits_0_on_a_valid_chain(django_db_setup: None) -> None:
    # A real process on the committed session database: proves the exit status, which
    # call_command cannot show.
    done = _manage("verify_audit", "--tenant", "acme")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("acme: OK, ")


def test_the_command_line_exits_1_on_an_unknown_tenant(django_db_setup: None) -> None:
    done = _manage("verify_audit", "--tenant", "nosuch")
    assert done.returncode == 1
    assert "CommandError: no tenant with schema 'nosuch'" in done.stderr
    assert done.stdout == ""
