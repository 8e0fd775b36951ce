from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from decimal import Decimal
from typing import Any

import pytest

from config.connection import connection
from governance.actors import Actor
from governance.context import set_correlation_id
from governance.hashchain import GENESIS_HASH, body_pieces, canonical_json
from governance.models import AuditEvent
from governance.services import audit_record
from tenants.models import Tenant

from .conftest import chain_head, events_after, record

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_appends_get_the_next_seqs_without_gaps(in_acme: Tenant) -> None:
    start, _ = chain_head()
    appended = record(n=3)
    assert [event.seq for event in appended] == [start + 1, start + 2, start + 3]
    assert all(event.schema == "acme" for event in appended)
    assert [row.seq for row in events_after(start)] == [start + 1, start + 2, start + 3]


def test_each_event_links_to_the_hash_of_the_one_before(in_acme: Tenant) -> None:
    start, start_hash = chain_head()
    record(n=3)
    rows = events_after(start)
    assert [row.prev_hash for row in rows] == [start_hash, rows[0].hash, rows[1].hash]


def test_the_stored_hash_is_sha256_of_prev_hash_and_body(in_acme: Tenant) -> None:
    start, _ = chain_head()
    appended = record(n=2)
    rows = events_after(start)
    for row, event in zip(rows, appended, strict=True):
        assert row.hash == hashlib.sha256((row.prev_hash + row.body).encode("utf-8")).hexdigest()
        assert row.hash == event.hash


def test_the_body_is_canonical_json_of_the_event(in_acme: Tenant) -> None:
    start, _ = chain_head()
    audit_record(
        actor=Actor.system("tests"), verb="test.canonical", target_type="test", data={"zeta": 1, "alpha": "é ü"}
    )
    (row,) = events_after(start)
    body = json.loads(row.body)
    assert row.body == json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert body["v"] == 1 and body["seq"] == start + 1
    assert "é ü" in row.body  # UTF-8 as is, not \u escapes


def test_generated_columns_match_the_body(in_acme: Tenant) -> None:
    start, _ = chain_head()
    audit_record(
        actor=Actor(type="user", id="42", label="alice@acme.example"),
        verb="test.columns",
        target_type="agents.agent",
        target_id=7,
        data={"nested": {"list": [1, 2.5, None, True]}},
        correlation_id="corr-123",
    )
    row = AuditEvent.objects.get(seq=start + 1)
    body = json.loads(row.body)
    assert (row.actor_type, row.actor_id, row.actor_label) == ("user", "42", "alice@acme.example")
    assert (row.verb, row.target_type, row.target_id) == ("test.columns", "agents.agent", "7")
    assert row.correlation_id == "corr-123"
    assert row.data == {"nested": {"list": [1, 2.5, None, True]}}
    assert (
        row.actor_type,
        row.actor_id,
        row.actor_label,
        row.verb,
        row.target_type,
        row.target_id,
        row.correlation_id,
        row.data,
    ) == (
        body["actor_type"],
        body["actor_id"],
        body["actor_label"],
        body["verb"],
        body["target_type"],
        body["target_id"],
        body["correlation_id"],
        body["data"],
    )
    assert row.created_at == EPOCH + dt.timedelta(microseconds=body["ts_us"])
    assert abs(row.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_the_correlation_id_defaults_to_the_one_of_the_work_in_hand(in_acme: Tenant) -> None:
    start, _ = chain_head()
    set_correlation_id("request-abc")
    try:
        record()
    finally:
        set_correlation_id(None)
    assert AuditEvent.objects.get(seq=start + 1).correlation_id == "request-abc"


def test_long_labels_are_cut_to_the_column_width(in_acme: Tenant) -> None:
    start, _ = chain_head()
    audit_record(
        actor=Actor(type="user", id="9" * 80, label="x" * 300),
        verb="test.long",
        target_type="t" * 150,
        target_id="i" * 150,
        correlation_id="c" * 80,
    )
    row = AuditEvent.objects.get(seq=start + 1)
    assert (
        len(row.actor_id),
        len(row.actor_label),
        len(row.target_type),
        len(row.target_id),
        len(row.correlation_id),
    ) == (64, 200, 100, 100, 64)


def test_tenant_chains_and_the_public_chain_are_independent(acme: Tenant, beta: Tenant) -> None:
    connection.set_tenant(acme)
    acme_start, acme_hash = chain_head()
    connection.set_tenant(beta)
    beta_start, beta_hash = chain_head()
    connection.set_schema_to_public()
    public_start, public_hash = chain_head()

    connection.set_tenant(acme)
    acme_events = record("test.acme", n=2)
    connection.set_tenant(beta)
    (beta_event,) = record("test.beta")
    connection.set_schema_to_public()
    (public_event,) = record("test.public")

    assert [e.seq for e in acme_events] == [acme_start + 1, acme_start + 2]
    assert (beta_event.seq, beta_event.schema) == (beta_start + 1, "beta")
    assert (public_event.seq, public_event.schema) == (public_start + 1, "public")
    assert [(r.verb, r.prev_hash) for r in events_after(public_start)] == [("test.public", public_hash)]
    connection.set_tenant(beta)
    assert [(r.verb, r.prev_hash) for r in events_after(beta_start)] == [("test.beta", beta_hash)]
    connection.set_tenant(acme)
    rows = events_after(acme_start)
    assert [r.verb for r in rows] == ["test.acme", "test.acme"]
    assert rows[0].prev_hash == acme_hash


def test_the_first_event_of_a_new_schema_links_to_the_genesis_hash(db: None) -> None:
    spare = Tenant.objects.filter(status="spare").order_by("pk").first()
    assert spare is not None, "the session keeps a warm pool of spares"
    connection.set_tenant(spare)
    assert chain_head() == (0, GENESIS_HASH)
    (event,) = record()
    row = AuditEvent.objects.get()
    assert (event.seq, row.seq, row.prev_hash) == (1, 1, GENESIS_HASH)


def test_an_empty_verb_is_refused(in_acme: Tenant) -> None:
    head = chain_head()
    with pytest.raises(ValueError, match="verb"):
        audit_record(actor=Actor.system(), verb="", target_type="test")
    assert chain_head() == head


NOT_JSON: dict[str, Any] = {
    "nan": {"x": math.nan},
    "infinity": {"x": -math.inf},
    "set": {"x": {1, 2}},
    "non-string key": {1: "one"},
    "nested non-string key": {"outer": [{"ok": 1}, {None: 2}]},
    "bytes": {"x": b"raw"},
    "decimal": {"x": Decimal("1.5")},
    "datetime": {"at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)},
    # Valid JSON, but PostgreSQL's jsonb refuses \u0000 and UTF-8 has no lone surrogates.
    "NUL in a string": {"x": "a\x00b"},
    "NUL in a key": {"a\x00": 1},
    "lone surrogate": {"x": "\ud800"},
}


@pytest.mark.parametrize("data", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_data_that_is_not_plain_json_is_refused_and_nothing_is_written(in_acme: Tenant, data: dict[Any, Any]) -> None:
    head = chain_head()
    with pytest.raises(ValueError):
        audit_record(actor=Actor.system("tests"), verb="test.bad_data", target_type="test", data=data)
    assert chain_head() == head
    assert not AuditEvent.objects.filter(verb="test.bad_data").exists()


def test_timestamps_follow_the_chain_order(in_acme: Tenant) -> None:
    start, _ = chain_head()
    record(n=5)
    stamps = [json.loads(row.body)["ts_us"] for row in events_after(start)]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("data", [{}, {"seq": 1, "ts_us": "x", "z": [1, {"b": None, "a": 'ü\n"'}]}])
def test_the_pieces_sent_to_the_database_rebuild_the_canonical_json(data: dict[str, Any]) -> None:
    record_ = {
        "v": 1,
        "actor_type": "user",
        "actor_id": "1",
        "actor_label": "a\u2028b",
        "verb": "x.y",
        "target_type": "t",
        "target_id": "2",
        "correlation_id": "c",
        "data": data,
    }
    before_seq, before_ts, after_ts = body_pieces(record_)
    assert before_seq + "17" + before_ts + "1700000000000001" + after_ts == canonical_json(
        {**record_, "seq": 17, "ts_us": 1700000000000001}
    )


def test_the_pieces_refuse_values_only_the_database_assigns() -> None:
    with pytest.raises(ValueError, match="assigned by the database"):
        body_pieces({"seq": 1, "actor_id": "x", "target_id": "y", "v": 1})
