"""The streamed audit export (API and export_audit) and its offline check (verify_export)."""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import StreamingHttpResponse
from django.test import Client

from config.connection import connection
from governance.actors import Actor
from governance.audit_query import audit_filter_parse
from governance.export import audit_export
from governance.hashchain import GENESIS_HASH
from governance.models import AuditEvent
from governance.services import audit_record
from governance.verification import ExportInvalid, export_verify
from tenants.models import Tenant
from tests.conftest import ALICE

from .conftest import chain_head

BASE_DIR = Path(__file__).resolve().parents[2]
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
URL = "/api/v1/governance/audit/export/"


def _download(client: Client, query: str) -> str:
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 200, response.content
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def _lines(text: str) -> list[str]:
    """``text`` as a file opened with ``newline=""`` reads it (str.splitlines would also split
    at U+2028, which JSON leaves unescaped)."""
    return list(io.StringIO(text, newline=""))


@pytest.fixture
def alice(acme_client: Client, acme: Tenant) -> Client:
    connection.set_tenant(acme)
    acme_client.force_login(User.objects.get(username=ALICE), backend=MODEL_BACKEND)
    connection.set_schema_to_public()
    return acme_client


@pytest.fixture
def marked(in_acme: Tenant) -> str:
    correlation = f"test-export-{chain_head()[0]}"
    for i, label in enumerate(["tests", "=HYPERLINK(1)", "+1", "tests"]):
        audit_record(
            actor=Actor("system", "", label),
            verb="test.export",
            target_type="test",
            target_id=str(i),
            data={"i": i, "text": 'quote " comma , newline \n unicode ü\u2028'},
            correlation_id=correlation,
        )
    connection.set_schema_to_public()
    return correlation


def test_a_whole_chain_jsonl_export_verifies_and_proves_the_head(alice: Client, acme: Tenant, marked: str) -> None:
    text = _download(alice, "format=jsonl")
    report = export_verify(_lines(text))
    connection.set_tenant(acme)
    exported = AuditEvent.objects.filter(verb="audit.exported").order_by("-seq").first()
    assert exported is not None and exported.actor_label == ALICE
    head_seq = exported.seq - 1  # the export's own record comes right after the head it read
    head = AuditEvent.objects.get(seq=head_seq)
    assert exported.data == {"format": "jsonl", "filters": {}, "head_seq": head_seq}
    proof = report.proof
    assert report.events == head_seq
    assert proof["complete"] is True and proof["schema"] == "acme"
    assert (proof["first_seq"], proof["first_prev_hash"]) == (1, GENESIS_HASH)
    assert (proof["last_seq"], proof["last_hash"], proof["head_hash"]) == (head_seq, head.hash, head.hash)
    # Each event line carries the body byte for byte.
    line = next(line for line in _lines(text) if f'"seq":{head_seq},' in line[:20])
    assert line.rstrip("\n").endswith(',"event":' + head.body + "}")


def test_a_filtered_csv_export_verifies_and_neutralizes_formulas(alice: Client, marked: str) -> None:
    text = _download(alice, f"format=csv&correlation_id={marked}")
    report = export_verify(_lines(text))
    assert report.events == 4
    assert report.proof["complete"] is False and report.proof["filters"] == {"correlation_id": marked}
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0][:3] == ["seq", "created_at", "actor_type"]
    assert [row[4] for row in rows[1:5]] == ["tests", "'=HYPERLINK(1)", "'+1", "tests"]
    assert rows[-1][0] == "#chain_proof" and json.loads(rows[-1][1])["count"] == 4
    assert "newline \\n unicode ü\u2028" in rows[1][11]


def test_the_stream_reads_in_batches_with_the_same_result(acme: Tenant, marked: str) -> None:
    connection.set_tenant(acme)
    audit_filter = audit_filter_parse({"correlation_id": marked})
    small = audit_export(audit_filter=audit_filter, fmt="jsonl", actor=None, batch_size=1)
    large = audit_export(audit_filter=audit_filter, fmt="jsonl", actor=None)
    small_lines, large_lines = _lines("".join(small.chunks)), _lines("".join(large.chunks))
    assert small_lines[:-1] == large_lines[:-1] and len(small_lines) == 5
    assert json.loads(small_lines[-1])["chain_proof"]["count"] == 4


def test_an_export_does_not_include_events_appended_while_it_streams(in_acme: Tenant) -> None:
    export = audit_export(audit_filter=audit_filter_parse({}), fmt="jsonl", actor=None, batch_size=5)
    head_seq = export.head_seq
    audit_record(actor=Actor.system("tests"), verb="test.during_export", target_type="test")
    report = export_verify(_lines("".join(export.chunks)))
    assert report.proof["last_seq"] == head_seq == report.events


@pytest.mark.parametrize(
    ("query", "name"),
    [("", "format"), ("format=xml", "format"), ("format=csv&verb=a*b", "verb"), ("format=csv&x=1", "x")],
)
def test_a_bad_format_or_filter_is_a_json_400(alice: Client, query: str, name: str) -> None:
    response = alice.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_filter" and response.json()["extra"] == {"filter": name}


def test_a_role_less_user_cannot_export(acme_client: Client, acme: Tenant) -> None:
    connection.set_tenant(acme)
    acme_client.force_login(User.objects.create_user("no-role-export@acme.example"), backend=MODEL_BACKEND)
    connection.set_schema_to_public()
    response = acme_client.get(f"{URL}?format=jsonl")
    assert response.status_code == 403 and response["Content-Type"] == "application/json"


# ---------------------------------------------------------------- tampered exports
def _export_lines(marked: str) -> list[str]:
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    export = audit_export(audit_filter=audit_filter_parse({}), fmt="jsonl", actor=None)
    return _lines("".join(export.chunks))


def _sha(prev: str, body: str) -> str:
    return hashlib.sha256((prev + body).encode()).hexdigest()


def _tampered(lines: list[str], how: str) -> list[str]:
    lines = list(lines)
    k = len(lines) - 3  # an event line near the end, with events on both sides
    record = json.loads(lines[k])
    body = lines[k].rstrip("\n")[lines[k].index(',"event":') + 9 : -1]
    if how == "body":
        lines[k] = lines[k].replace('"verb":"test.export"', '"verb":"test.forged"')
    elif how == "rehashed":
        forged = body.replace('"verb":"test.export"', '"verb":"test.forged"')
        lines[k] = (
            f'{{"seq":{record["seq"]},"prev_hash":"{record["prev_hash"]}",'
            f'"hash":"{_sha(record["prev_hash"], forged)}","event":{forged}}}\n'
        )
    elif how == "dropped":
        del lines[k]
    elif how == "no proof":
        del lines[-1]
    elif how == "proof":
        lines[-1] = lines[-1].replace('"complete":true', '"complete":false')
    return lines


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("body", "hash does not match the event's content"),
        ("rehashed", "prev_hash does not match the previous event's hash"),
        ("dropped", r"the export is complete, but seq \d+ is missing"),
        ("no proof", "no chain proof at the end"),
        ("proof", "an export is complete exactly when it has no filters"),
    ],
)
def test_a_tampered_export_is_refused_naming_the_problem(in_acme: Tenant, marked: str, how: str, message: str) -> None:
    lines = _export_lines(marked)
    assert export_verify(lines).events == len(lines) - 1
    with pytest.raises(ExportInvalid, match=message):
        export_verify(_tampered(lines, how))


def test_a_csv_column_that_disagrees_with_the_body_is_refused(alice: Client, marked: str) -> None:
    text = _download(alice, f"format=csv&correlation_id={marked}")
    forged = text.replace("'=HYPERLINK(1)", "someone else", 1)
    with pytest.raises(ExportInvalid, match="row 3: the actor_label column does not match the body"):
        export_verify(_lines(forged))


# ---------------------------------------------------------------- the commands
def test_export_audit_writes_a_file_that_verify_export_accepts(in_acme: Tenant, tmp_path: Path) -> None:
    connection.set_schema_to_public()
    target = tmp_path / "acme.jsonl"
    call_command("export_audit", tenant="acme", output=str(target), stderr=StringIO())
    out = StringIO()
    call_command("verify_export", str(target), stdout=out)
    assert ": OK, jsonl, " in out.getvalue() and "of acme's chain, the whole chain" in out.getvalue()
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    last = AuditEvent.objects.order_by("-seq").first()
    assert last is not None and last.verb == "audit.exported" and last.actor_label == "operator:export_audit"


def test_export_audit_to_stdout_with_filters(in_acme: Tenant, marked: str) -> None:
    out = StringIO()
    call_command("export_audit", tenant="acme", format="csv", correlation_id=marked, stdout=out)
    assert export_verify(_lines(out.getvalue())).events == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tenant": "nosuch"}, "no tenant with schema 'nosuch'"),
        ({"tenant": "acme", "verb": "a*"}, "--verb: a family of verbs"),
        ({"tenant": "acme", "from": "soon"}, "--from: not an ISO 8601"),
    ],
)
def test_export_audit_refuses_bad_options(db: None, options: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("export_audit", stdout=StringIO(), **options)


def _offline(*args: str) -> subprocess.CompletedProcess[str]:
    """manage.py in a process whose database does not exist: proves the check needs none."""
    nowhere = "postgres://nobody:nothing@127.0.0.1:9/nowhere"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": nowhere, "DATABASE_OWNER_URL": nowhere},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_verify_export_runs_offline_and_exits_1_on_a_tampered_file(
    in_acme: Tenant, marked: str, tmp_path: Path
) -> None:
    lines = _export_lines(marked)
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text("".join(lines), encoding="utf-8")
    bad.write_text("".join(_tampered(lines, "body")), encoding="utf-8")
    done = _offline("verify_export", str(good))
    assert (done.returncode, done.stderr) == (0, "")
    assert f"{good}: OK, jsonl, {len(lines) - 1} events" in done.stdout
    done = _offline("verify_export", str(bad))
    assert done.returncode == 1
    assert f"line {len(lines) - 2}: seq" in done.stderr and "hash does not match the event's content" in done.stderr


def test_verify_export_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No such file or directory"):
        call_command("verify_export", str(tmp_path / "missing.jsonl"))


@pytest.mark.slow
def test_the_asgi_server_streams_an_export_that_verifies(web_server: int) -> None:
    # The production server: the export is sent in chunks as it is read, not gathered first.
    from tests.live.conftest import token

    api_token = token(web_server, "acme.localhost", ALICE)
    conn = http.client.HTTPConnection("127.0.0.1", web_server, timeout=30)
    conn.request(
        "GET", f"{URL}?format=jsonl", headers={"Host": "acme.localhost", "Authorization": f"Token {api_token}"}
    )
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Type") == "application/x-ndjson"
    report = export_verify(_lines(text))
    assert report.proof["schema"] == "acme" and report.proof["complete"] is True
    assert report.events == report.proof["head_seq"] == int(response.getheader("X-Audit-Head-Seq") or 0)
