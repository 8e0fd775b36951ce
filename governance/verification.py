"""Re-checking an audit chain: a schema's rows in the database (``audit_chain_verify``), and
an export file offline (``export_verify``, which touches no database: an auditor runs it on
a machine of their own with ``manage.py verify_export FILE``)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from config.connection import connection
from governance.hashchain import GENESIS_HASH


@dataclass(frozen=True)
class ChainReport:
    schema: str
    events: int
    head_hash: str
    broken_seq: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def audit_chain_verify(*, batch_size: int = 20_000, after: tuple[int, str] | None = None) -> ChainReport:
    """Walk the current schema's chain in seq order and report the first broken link.

    A link is broken when its seq is not the next integer (a deleted or inserted row), its
    prev_hash is not the previous hash (reordered or re-chained rows), or sha256(prev_hash ‖
    body) is not its stored hash (an altered row). With ``after`` (a seq and its hash, known
    good: a checkpoint), only the events after it are walked, the first of them extending
    that hash; ``events`` then counts those. Read-only.
    """
    schema = connection.schema_name
    start_seq, prev = after if after is not None else (0, GENESIS_HASH)
    expected_seq, count = start_seq + 1, 0
    sha256 = hashlib.sha256
    with transaction.atomic():
        with connection.cursor() as setup:
            setup.execute("SELECT 1")  # makes django-tenants set the search path on this connection
        # A server-side cursor streams the table without holding it all in memory.
        with connection.connection.cursor(name="vigil_audit_verify") as cursor:
            cursor.itersize = batch_size
            cursor.execute(
                "SELECT seq, prev_hash, hash, body FROM governance_auditevent WHERE seq > %s ORDER BY seq", [start_seq]
            )
            for seq, prev_hash, stored, body in cursor:
                if seq != expected_seq:
                    missing = expected_seq if seq > expected_seq else seq
                    return ChainReport(schema, count, prev, missing, f"seq {expected_seq} expected, found {seq}")
                if prev_hash != prev:
                    return ChainReport(schema, count, prev, seq, "prev_hash does not match the previous event's hash")
                if sha256((prev_hash + body).encode("utf-8")).hexdigest() != stored:
                    return ChainReport(schema, count, prev, seq, "hash does not match the event's content")
                prev, expected_seq, count = stored, expected_seq + 1, count + 1
    return ChainReport(schema, count, prev)


# ------------------------------------------------------------------ exports, offline
# The formats are described in governance/export.py; this part imports nothing that needs a
# database or Django's settings.
_HASH = re.compile(r"^[0-9a-f]{64}$")
_JSONL_EVENT = re.compile(
    r'^\{"seq":([1-9][0-9]{0,18}),"prev_hash":"([0-9a-f]{64})","hash":"([0-9a-f]{64})","event":(\{.*\})\}$', re.DOTALL
)
_CSV_COLUMNS = (
    "seq",
    "created_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "verb",
    "target_type",
    "target_id",
    "correlation_id",
    "prev_hash",
    "hash",
    "body",
)
# The columns of a CSV row that copy a field of its body.
_CSV_COPIES = ("actor_type", "actor_id", "actor_label", "verb", "target_type", "target_id", "correlation_id")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PROOF_FIELDS = {
    "format",
    "schema",
    "exported_at",
    "filters",
    "complete",
    "count",
    "first_seq",
    "first_prev_hash",
    "first_hash",
    "last_seq",
    "last_hash",
    "head_seq",
    "head_hash",
}


class ExportInvalid(Exception):
    """The export does not verify; the message names the line and what is wrong."""


@dataclass
class ExportReport:
    fmt: str
    events: int
    proof: dict[str, Any] = field(default_factory=dict)
    # The hashes the export holds at the seqs asked for (``watch``): checkpoints' seqs.
    hashes_at: dict[int, str] = field(default_factory=dict)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


@dataclass
class _Walk:
    """The chain as it is read, event by event."""

    watch: frozenset[int] = frozenset()
    hashes_at: dict[int, str] = field(default_factory=dict)
    count: int = 0
    gap: int | None = None  # the first seq missing between two exported events
    first: tuple[int, str, str] | None = None
    last: tuple[int, str] | None = None

    def add(self, where: str, seq: Any, prev_hash: Any, digest: Any, body: str) -> None:
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ExportInvalid(f"{where}: seq must be a positive integer")
        for name, value in (("prev_hash", prev_hash), ("hash", digest)):
            if not isinstance(value, str) or not _HASH.match(value):
                raise ExportInvalid(f"{where}: {name} must be 64 lowercase hex digits")
        try:
            event = _loads(body)
        except ValueError as exc:
            raise ExportInvalid(f"{where}: the body is not JSON ({exc})") from None
        if not isinstance(event, dict) or event.get("seq") != seq:
            raise ExportInvalid(f"{where}: the body's seq is not the event's seq {seq}")
        if hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest() != digest:
            raise ExportInvalid(f"{where}: seq {seq}: hash does not match the event's content")
        if self.last is not None:
            last_seq, last_hash = self.last
            if seq <= last_seq:
                raise ExportInvalid(f"{where}: seq {seq} after seq {last_seq}: events out of order")
            if seq == last_seq + 1 and prev_hash != last_hash:
                raise ExportInvalid(f"{where}: seq {seq}: prev_hash does not match the previous event's hash")
            if seq != last_seq + 1 and self.gap is None:
                self.gap = last_seq + 1
        if seq in self.watch:
            self.hashes_at[seq] = digest
        if self.first is None:
            self.first = (seq, prev_hash, digest)
        self.last = (seq, digest)
        self.count += 1

    def event(self, where: str, seq: int, prev_hash: str, digest: str, body: str) -> dict[str, Any]:
        self.add(where, seq, prev_hash, digest, body)
        parsed: dict[str, Any] = _loads(body)
        return parsed

    def check_proof(self, proof: Any) -> dict[str, Any]:
        if not isinstance(proof, dict) or set(proof) != _PROOF_FIELDS:
            raise ExportInvalid(f"the chain proof must have exactly the fields {', '.join(sorted(_PROOF_FIELDS))}")
        if proof["complete"] is True and self.gap is not None:
            raise ExportInvalid(f"chain proof: the export is complete, but seq {self.gap} is missing")
        first = self.first or (None, None, None)
        last = self.last or (None, None)
        expected = {
            "count": self.count,
            "first_seq": first[0],
            "first_prev_hash": first[1],
            "first_hash": first[2],
            "last_seq": last[0],
            "last_hash": last[1],
        }
        for name, value in expected.items():
            if proof[name] != value:
                raise ExportInvalid(f"chain proof: {name} is {proof[name]!r}, the events say {value!r}")
        if proof["complete"] != (not proof["filters"]):
            raise ExportInvalid("chain proof: an export is complete exactly when it has no filters")
        if proof["complete"]:
            if self.count != proof["head_seq"]:
                raise ExportInvalid(
                    f"chain proof: a complete export holds seq 1 to {proof['head_seq']}, this one {self.count} events"
                )
            if self.count and (first[0] != 1 or first[1] != GENESIS_HASH or last[1] != proof["head_hash"]):
                raise ExportInvalid("chain proof: a complete export starts at the genesis and ends at the head")
        return proof


def _jsonl(lines: Iterator[str], walk: _Walk) -> ExportReport:
    proof = None
    for number, raw in enumerate(lines, start=1):
        where = f"line {number}"
        if proof is not None:
            raise ExportInvalid(f"{where}: text after the chain proof")
        line = raw[:-1] if raw.endswith("\n") else raw
        if line.startswith('{"chain_proof":'):
            try:
                wrapped = _loads(line)
            except ValueError as exc:
                raise ExportInvalid(f"{where}: the chain proof is not JSON ({exc})") from None
            if set(wrapped) != {"chain_proof"}:
                raise ExportInvalid(f"{where}: the chain proof line holds other keys")
            proof = walk.check_proof(wrapped["chain_proof"])
            continue
        # The line's fixed head names seq and the links; the rest, up to the closing brace,
        # is the body exactly as hashed (parsed once, in add, which checks it is JSON).
        match = _JSONL_EVENT.match(line)
        if match is None:
            raise ExportInvalid(f"{where}: not an event line")
        walk.add(where, int(match[1]), match[2], match[3], match[4])
    if proof is None:
        raise ExportInvalid("no chain proof at the end: the export is incomplete")
    return ExportReport("jsonl", walk.count, proof, walk.hashes_at)


def _csv_copy(value: Any) -> str:
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv(lines: Iterator[str], walk: _Walk) -> ExportReport:
    reader = csv.reader(lines, strict=True)
    proof = None
    try:
        header = next(reader, None)
        if header is None or tuple(header) != _CSV_COLUMNS:
            raise ExportInvalid(f"row 1: the header must be {','.join(_CSV_COLUMNS)}")
        for row in reader:
            where = f"row {reader.line_num}"
            if proof is not None:
                raise ExportInvalid(f"{where}: rows after the chain proof")
            if row and row[0] == "#chain_proof":
                if len(row) != 2:
                    raise ExportInvalid(f"{where}: the chain proof row has two fields")
                try:
                    proof = walk.check_proof(_loads(row[1]))
                except ValueError as exc:
                    raise ExportInvalid(f"{where}: the chain proof is not JSON ({exc})") from None
                continue
            if len(row) != len(_CSV_COLUMNS):
                raise ExportInvalid(f"{where}: {len(row)} fields, expected {len(_CSV_COLUMNS)}")
            cells = dict(zip(_CSV_COLUMNS, row, strict=True))
            if not (cells["seq"].isascii() and cells["seq"].isdigit()):
                raise ExportInvalid(f"{where}: seq must be a positive integer")
            event = walk.event(where, int(cells["seq"]), cells["prev_hash"], cells["hash"], cells["body"])
            for name in _CSV_COPIES:
                if cells[name] != _csv_copy(event.get(name, "")):
                    raise ExportInvalid(f"{where}: the {name} column does not match the body")
    except csv.Error as exc:
        raise ExportInvalid(f"row {reader.line_num}: not CSV ({exc})") from None
    if proof is None:
        raise ExportInvalid("no chain proof at the end: the export is incomplete")
    return ExportReport("csv", walk.count, proof, walk.hashes_at)


def export_verify(lines: Iterable[str], *, watch: Iterable[int] = ()) -> ExportReport:
    """Check an export (its text, line by line with line endings, as a file opened with
    ``newline=""`` gives it): every event's hash from its body, every link between
    consecutive seqs, and the chain proof at the end. Returns what was verified; raises
    ExportInvalid naming the first problem. Reads one line at a time: any size fits. The
    report's ``hashes_at`` holds the exported hashes at the seqs of ``watch``."""
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        raise ExportInvalid("the export is empty")

    def again() -> Iterator[str]:
        yield first
        yield from iterator

    walk = _Walk(watch=frozenset(watch))
    if first.startswith("{"):
        return _jsonl(again(), walk)
    return _csv(again(), walk)


def export_file_verify(path: str | Path, *, watch: Iterable[int] = ()) -> ExportReport:
    """``export_verify`` of the file at ``path`` (UTF-8)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return export_verify(handle, watch=watch)
    except UnicodeDecodeError as exc:
        raise ExportInvalid(f"not UTF-8 text ({exc})") from None
