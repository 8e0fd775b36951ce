"""Signed checkpoints outside the database, and verify_audit --checkpoints against a chain
cut short or rewritten by someone with the table owner's rights (this process logs in as
the owner; the rollback at the end of each test restores the trigger and the rows)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from config.connection import connection
from governance.checkpoints import (
    Checkpoint,
    CheckpointError,
    checkpoint_paths,
    checkpoint_read,
    checkpoint_write,
    key_id,
    key_new,
    private_key_parse,
    public_key_text,
    schema_directory,
    signing_key,
)
from governance.hashchain import chain_hash
from tenants.models import Tenant
from tests.agents.helpers_execution import only_our_workers
from tests.conftest import WorkerHandle

from .conftest import append_only_trigger_disable, chain_head, execute, record

__all__ = ["only_our_workers"]  # a fixture used below


@pytest.fixture
def key_text(settings: Settings, tmp_path: Path) -> str:
    text = key_new()
    settings.VIGIL_CHECKPOINT_KEY = text
    settings.VIGIL_CHECKPOINT_DIR = tmp_path / "checkpoints"
    return text


def _checkpoint(**options: Any) -> str:
    out = StringIO()
    call_command("audit_checkpoint", stdout=out, **options)
    return out.getvalue()


def _verify(**options: Any) -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out, checkpoints=str(settings.VIGIL_CHECKPOINT_DIR), **options)
    return out.getvalue()


def _files(schema: str) -> list[Path]:
    return checkpoint_paths(Path(settings.VIGIL_CHECKPOINT_DIR), schema)


def test_a_checkpoint_of_every_chain_is_signed_and_written_outside_the_database(db: None, key_text: str) -> None:
    out = _checkpoint()
    public_key = private_key_parse(key_text).public_key()
    for schema in ("acme", "beta", "public"):
        connection.set_schema_to_public() if schema == "public" else connection.set_tenant(
            Tenant.objects.get(schema_name=schema)
        )
        head_seq, head_hash = chain_head()
        (path,) = _files(schema)
        assert f"{schema}: checkpoint at seq {head_seq}: {path}" in out
        checkpoint = checkpoint_read(path, public_key=public_key)
        assert (checkpoint.schema, checkpoint.seq, checkpoint.head_hash) == (schema, head_seq, head_hash)
        assert checkpoint.key_id == key_id(public_key)
        assert path.name.startswith(f"{head_seq:020d}-") and oct(path.parent.stat().st_mode)[-3:] == "700"
    connection.set_schema_to_public()
    assert not any(p.name.startswith(".") for p in Path(settings.VIGIL_CHECKPOINT_DIR).rglob("*"))
    assert not any(spare.startswith("spare") for spare in os.listdir(settings.VIGIL_CHECKPOINT_DIR))


def test_only_a_chain_whose_head_moved_gets_a_new_checkpoint(db: None, key_text: str) -> None:
    _checkpoint()
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    record("test.checkpoint")
    connection.set_schema_to_public()
    out = _checkpoint()
    assert len(_files("acme")) == 2 and len(_files("beta")) == 1
    assert "beta: head unchanged at seq" in out


def test_verify_audit_proves_each_chain_extends_its_checkpoints(db: None, key_text: str) -> None:
    _checkpoint()
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    record("test.after_checkpoint", n=2)
    connection.set_schema_to_public()
    _checkpoint(tenant="acme")
    out = _verify()
    assert "acme: extends all 2 checkpoints, the latest at seq" in out
    assert "beta: extends all 1 checkpoints" in out and "public: extends all 1 checkpoints" in out


def test_a_truncated_tail_is_caught(in_acme: Tenant, key_text: str) -> None:
    record("test.tail", n=3)
    head_seq, _ = chain_head()
    _checkpoint(tenant="acme")
    connection.set_tenant(in_acme)
    append_only_trigger_disable()
    assert execute("DELETE FROM governance_auditevent WHERE seq > %s", [head_seq - 2]) == 2
    connection.set_schema_to_public()
    out = StringIO()
    with pytest.raises(CommandError, match=rf"^audit chain broken in: acme at checkpoint seq {head_seq}$"):
        call_command("verify_audit", tenant="acme", checkpoints=str(settings.VIGIL_CHECKPOINT_DIR), stdout=out)
    # The chain alone still verifies: only the checkpoint shows what is missing.
    assert out.getvalue().startswith(f"acme: OK, {head_seq - 2} events")
    assert f"seq {head_seq} is missing (the chain ends at seq {head_seq - 2}): truncated" in out.getvalue()


def test_a_rewritten_chain_is_caught(in_acme: Tenant, key_text: str) -> None:
    record("test.rewrite", n=3)
    head_seq, head_hash = chain_head()
    _checkpoint(tenant="acme")
    connection.set_tenant(in_acme)
    append_only_trigger_disable()
    # Rewrite the last two events and re-chain them: every link is consistent again.
    with connection.cursor() as cursor:
        cursor.execute("SELECT hash FROM governance_auditevent WHERE seq = %s", [head_seq - 2])
        prev = cursor.fetchone()[0]
        for seq in (head_seq - 1, head_seq):
            cursor.execute("SELECT body FROM governance_auditevent WHERE seq = %s", [seq])
            body = cursor.fetchone()[0].replace('"verb":"test.rewrite"', '"verb":"test.harmless"')
            digest = chain_hash(prev, body)
            cursor.execute(
                "UPDATE governance_auditevent SET body = %s, prev_hash = %s, hash = %s WHERE seq = %s",
                [body, prev, digest, seq],
            )
            prev = digest
    connection.set_schema_to_public()
    out = StringIO()
    with pytest.raises(CommandError, match=rf"^audit chain broken in: acme at checkpoint seq {head_seq}$"):
        call_command("verify_audit", tenant="acme", checkpoints=str(settings.VIGIL_CHECKPOINT_DIR), stdout=out)
    assert out.getvalue().startswith(f"acme: OK, {head_seq} events")
    assert f"has hash {prev[:16]}…, the checkpoint {head_hash[:16]}…: rewritten" in out.getvalue()


def _export_checked(tmp_path: Path, key_text: str) -> str:
    """Export acme's chain now and check the file offline against the checkpoints."""
    target = tmp_path / "acme.jsonl"
    call_command("export_audit", tenant="acme", output=str(target), stderr=StringIO())
    public = public_key_text(private_key_parse(key_text).public_key())
    out = StringIO()
    call_command(
        "verify_export", str(target), checkpoints=str(settings.VIGIL_CHECKPOINT_DIR), public_key=public, stdout=out
    )
    return out.getvalue()


def test_an_export_is_checked_offline_against_the_checkpoints(in_acme: Tenant, key_text: str, tmp_path: Path) -> None:
    record("test.offline", n=2)
    _checkpoint(tenant="acme")
    assert "agrees with the 1 signed checkpoint(s) of acme it covers" in _export_checked(tmp_path, key_text)


def test_an_export_of_a_rewritten_chain_disagrees_with_its_checkpoint(
    in_acme: Tenant, key_text: str, tmp_path: Path
) -> None:
    record("test.offline", n=2)
    head_seq, _ = chain_head()
    _checkpoint(tenant="acme")
    connection.set_tenant(in_acme)
    append_only_trigger_disable()
    with connection.cursor() as cursor:
        cursor.execute("SELECT prev_hash, body FROM governance_auditevent WHERE seq = %s", [head_seq])
        prev, body = cursor.fetchone()
        forged = body.replace('"test.offline"', '"test.innocent"')
        cursor.execute(
            "UPDATE governance_auditevent SET body = %s, hash = %s WHERE seq = %s",
            [forged, chain_hash(prev, forged), head_seq],
        )
    connection.set_schema_to_public()
    with pytest.raises(CommandError, match=f"seq {head_seq} has another hash than the checkpoint .*rewritten"):
        _export_checked(tmp_path, key_text)


def test_an_export_of_a_truncated_chain_is_cut_short_of_its_checkpoint(
    in_acme: Tenant, key_text: str, tmp_path: Path
) -> None:
    record("test.offline", n=2)
    head_seq, _ = chain_head()
    _checkpoint(tenant="acme")
    connection.set_tenant(in_acme)
    append_only_trigger_disable()
    execute("DELETE FROM governance_auditevent WHERE seq = %s", [head_seq])
    connection.set_schema_to_public()
    with pytest.raises(CommandError, match=f"is at seq {head_seq}, past the head {head_seq - 1} exported later"):
        _export_checked(tmp_path, key_text)


def test_a_checkpoint_not_signed_by_the_key_is_not_trusted(db: None, key_text: str) -> None:
    _checkpoint(tenant="beta")
    (path,) = _files("beta")
    fields = json.loads(path.read_text())
    forger = Ed25519PrivateKey.generate()
    forged = Checkpoint(**{**fields, "seq": fields["seq"] + 1000, "signature": ""})
    signed = Checkpoint(
        **{**forged.__dict__, "signature": base64.b64encode(forger.sign(forged.signed_text())).decode()}
    )
    checkpoint_write(signed, directory=Path(settings.VIGIL_CHECKPOINT_DIR))
    out = StringIO()
    with pytest.raises(CommandError, match="audit chain broken in: beta \\(checkpoint "):
        call_command("verify_audit", tenant="beta", checkpoints=str(settings.VIGIL_CHECKPOINT_DIR), stdout=out)
    assert "CHECKPOINT UNTRUSTED" in out.getvalue() and "not signed by the checkpoint key" in out.getvalue()


def test_the_auditor_verifies_with_the_public_key_only(db: None, key_text: str, settings: Settings) -> None:
    _checkpoint(tenant="beta")
    public = public_key_text(private_key_parse(key_text).public_key())
    settings.VIGIL_CHECKPOINT_KEY = key_new()  # the verifier's own key is another one
    assert "beta: extends all 1 checkpoints" in _verify(tenant="beta", public_key=public)
    with pytest.raises(CommandError, match="beta \\(checkpoint"):
        _verify(tenant="beta")


def test_a_broken_chain_gets_no_checkpoint(in_acme: Tenant, key_text: str) -> None:
    start, _ = chain_head()
    record("test.tamper", n=2)
    append_only_trigger_disable()
    execute(
        "UPDATE governance_auditevent SET body = replace(body, '\"test.tamper\"', '\"test.forged\"') WHERE seq = %s",
        [start + 1],
    )
    connection.set_schema_to_public()
    out = StringIO()
    with pytest.raises(CommandError, match="1 chain\\(s\\) refused a checkpoint"):
        call_command("audit_checkpoint", tenant="acme", stdout=out)
    assert f"acme: chain broken at seq {start + 1}" in out.getvalue()
    assert _files("acme") == []


def test_a_schema_name_outside_the_pattern_never_makes_a_path(tmp_path: Path) -> None:
    for schema in ("../etc", "acme/x", "Acme", "", "a" * 64):
        with pytest.raises(CheckpointError, match="is not a schema name"):
            schema_directory(tmp_path, schema)
    evil = tmp_path / "acme" / f"{1:020d}-20260101T000000000000Z.json"
    evil.parent.mkdir()
    key = Ed25519PrivateKey.generate()
    fields = Checkpoint(1, "../etc", 1, "0" * 64, "2026-01-01T00:00:00+00:00", key_id(key.public_key()))
    evil.write_text(json.dumps({**fields.__dict__, "signature": ""}))
    with pytest.raises(CheckpointError, match="malformed checkpoint"):
        checkpoint_read(evil, public_key=key.public_key())


def test_development_mode_creates_the_key_once_under_run(settings: Settings, tmp_path: Path) -> None:
    settings.VIGIL_CHECKPOINT_KEY = ""
    settings.VIGIL_CHECKPOINT_KEY_FILE = tmp_path / "run" / "checkpoint.key"
    first = signing_key()
    assert oct(settings.VIGIL_CHECKPOINT_KEY_FILE.stat().st_mode)[-3:] == "600"
    assert key_id(signing_key().public_key()) == key_id(first.public_key())
    settings.DEVELOPMENT = False
    with pytest.raises(ImproperlyConfigured, match="VIGIL_CHECKPOINT_KEY is not set"):
        signing_key()
    settings.VIGIL_CHECKPOINT_KEY = "bm90IGEga2V5"
    with pytest.raises(ImproperlyConfigured, match="not an Ed25519 private key"):
        signing_key()


def test_beat_runs_the_checkpoint_task_every_configured_minutes() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry["task"] == "governance.audit_checkpoint"
    assert entry["schedule"] == 60.0 * settings.VIGIL_CHECKPOINT_MINUTES
    assert settings.CELERY_TASK_ROUTES["governance.audit_checkpoint"] == {"queue": "housekeeping"}


@pytest.fixture
def checkpoint_worker(only_our_workers: None, celery_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Path, str]]:
    # Only this worker consumes the session's queues: the shared one would write elsewhere.
    directory, text = tmp_path / "worker-checkpoints", key_new()
    env = {**celery_env, "VIGIL_CHECKPOINT_DIR": str(directory), "VIGIL_CHECKPOINT_KEY": text}
    handle = WorkerHandle(env=env, log_path=tmp_path / "worker.log")
    handle.start()
    yield directory, text
    handle.stop()


@pytest.mark.slow
def test_a_worker_writes_the_checkpoints_beat_asks_for(checkpoint_worker: tuple[Path, str]) -> None:
    from governance.tasks import audit_checkpoint

    directory, text = checkpoint_worker
    audit_checkpoint.delay()
    deadline = time.monotonic() + 60
    while len(checkpoint_paths(directory, "acme")) + len(checkpoint_paths(directory, "beta")) < 2:
        assert time.monotonic() < deadline, "no checkpoint written within 60 s"
        time.sleep(0.1)
    (path,) = checkpoint_paths(directory, "acme")
    checkpoint = checkpoint_read(path, public_key=private_key_parse(text).public_key())
    assert checkpoint.schema == "acme" and checkpoint.seq >= 1


def test_the_command_prints_a_new_key_and_the_public_key_to_hand_to_auditors(key_text: str) -> None:
    assert _checkpoint(public_key=True).strip() == public_key_text(private_key_parse(key_text).public_key())
    fresh = _checkpoint(new_key=True).strip()
    assert len(base64.b64decode(fresh)) == 32 and fresh != key_text
    assert private_key_parse(fresh).public_key() is not None
