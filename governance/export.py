"""Compliance export of a schema's audit chain, streamed, ending with the chain proof.

Both formats carry every event's ``body`` byte for byte (the canonical JSON that was hashed),
its ``prev_hash`` and its ``hash``, so an export can be re-checked offline with nothing but
sha256: ``manage.py verify_export FILE`` (``governance.verification.export_verify``), which
needs no database.

JSONL (``application/x-ndjson``), one object per line::

    {"seq":1,"prev_hash":"000…","hash":"9f2…","event":{…the body…}}
    …
    {"chain_proof":{…}}

The text after ``"event":`` up to the line's closing brace is the body exactly as hashed
(it is JSON already, so it is written as it is, not quoted).

CSV (``text/csv``, UTF-8, RFC 4180 quoting): a header row ``seq, created_at, actor_type,
actor_id, actor_label, verb, target_type, target_id, correlation_id, prev_hash, hash, body``,
one row per event, and a last row of two fields: ``#chain_proof`` and the proof as JSON.
The columns before ``prev_hash`` are copies of the body's fields for spreadsheets; cells that
a spreadsheet would run as a formula (starting with ``= + - @``, a tab or a carriage return)
get a leading ``'``. ``body`` is authoritative; ``created_at`` is rounded by the database
(the body's ``ts_us`` is exact).

The chain proof: ``schema``, ``exported_at``, ``filters`` (as given; empty for the whole
chain), ``complete`` (no filters: every event from seq 1 to ``head_seq``), ``count``,
``first_seq``, ``first_hash``, ``first_prev_hash`` (the hash the first exported event
extends), ``last_seq``, ``last_hash``, and ``head_seq`` / ``head_hash``: the chain's head when
the export began. Events appended during the export are not in it. A filtered export proves
each event's own hash and every link between consecutive seqs it holds.

The export reads the chain in seq ranges of ``batch_size`` events (one short query each, no
transaction held open), so memory stays flat however long the chain is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Func, TextField, Value
from django.utils import timezone

from config.connection import connection
from governance.actors import Actor
from governance.audit_query import AuditFilter
from governance.hashchain import GENESIS_HASH, canonical_json
from governance.services import audit_record

FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
PROOF_FORMAT = 1
CSV_COLUMNS = (
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
CSV_PROOF_MARK = "#chain_proof"
JSONL_PROOF_KEY = "chain_proof"
_FORMULA_STARTS = frozenset({"=", "+", "-", "@", "\t", "\r"})
# created_at as text, made by PostgreSQL (the session's time zone is UTC): no parsing here.
_CREATED_TEXT = Func(
    F("created_at"), Value('YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), function="to_char", output_field=TextField()
)


def csv_cell(value: str) -> str:
    """``value`` as a CSV cell that no spreadsheet runs as a formula."""
    return "'" + value if value[:1] in _FORMULA_STARTS else value


def chain_head() -> tuple[int, str]:
    """(seq, hash) of the current schema's newest event; (0, genesis) for an empty chain."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM governance_auditevent ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


@dataclass(frozen=True)
class Export:
    """An export begun: its head, its media type, and the stream of its text."""

    schema: str
    fmt: str
    head_seq: int
    head_hash: str
    chunks: Iterator[str]

    @property
    def content_type(self) -> str:
        return FORMATS[self.fmt]

    @property
    def filename(self) -> str:
        return f"audit-{self.schema}-{self.head_seq}.{self.fmt}"


def audit_export(*, audit_filter: AuditFilter, fmt: str, actor: Actor | None, batch_size: int = 10_000) -> Export:
    """Begin an export of the current schema's chain: read its head now, record who exported
    what (unless ``actor`` is None: a benchmark's), and return the stream, which reads the
    events as it is consumed. Raises ValueError for an unknown format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; formats are {', '.join(FORMATS)}")
    schema = connection.schema_name
    tenant = connection.tenant
    head_seq, head_hash = chain_head()
    if actor is not None:
        # Recorded after the head is read, so the export does not contain its own record.
        audit_record(
            actor=actor,
            verb="audit.exported",
            target_type="audit",
            target_id=schema,
            data={"format": fmt, "filters": audit_filter.given, "head_seq": head_seq},
        )
    stream = _stream(
        audit_filter=audit_filter,
        fmt=fmt,
        tenant=tenant,
        schema=schema,
        head=(head_seq, head_hash),
        batch_size=batch_size,
    )
    return Export(schema=schema, fmt=fmt, head_seq=head_seq, head_hash=head_hash, chunks=stream)


def _batches(
    *, audit_filter: AuditFilter, tenant: Any, schema: str, head_seq: int, columns: tuple[str, ...], batch_size: int
) -> Iterator[list[tuple[Any, ...]]]:
    base = audit_filter.queryset().filter(seq__lte=head_seq).annotate(created_text=_CREATED_TEXT).order_by("seq")
    after = 0
    while True:
        # A streamed response is consumed after the view returns: the connection may have
        # been pointed elsewhere in between.
        if connection.schema_name != schema:
            connection.set_tenant(tenant)
        sql, params = base.filter(seq__gt=after).values_list(*columns)[:batch_size].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        after = rows[-1][0]


def _stream(
    *, audit_filter: AuditFilter, fmt: str, tenant: Any, schema: str, head: tuple[int, str], batch_size: int
) -> Iterator[str]:
    count, first, last = 0, None, None
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
    columns: tuple[str, ...] = ("seq", "prev_hash", "hash", "body")
    if fmt == "csv":
        columns += (
            "created_text",
            "actor_type",
            "actor_id",
            "actor_label",
            "verb",
            "target_type",
            "target_id",
            "correlation_id",
        )
    for rows in _batches(
        audit_filter=audit_filter,
        tenant=tenant,
        schema=schema,
        head_seq=head[0],
        columns=columns,
        batch_size=batch_size,
    ):
        if first is None:
            first = rows[0]
        last = rows[-1]
        count += len(rows)
        if fmt == "jsonl":
            yield "".join([f'{{"seq":{s},"prev_hash":"{p}","hash":"{h}","event":{b}}}\n' for s, p, h, b in rows])
        else:
            # rows: seq, prev_hash, hash, body, created_at, then the columns copied from the body.
            # Text cells are always quoted (RFC 4180), which csv.writer would do cell by cell
            # at a third of the speed.
            formula = _FORMULA_STARTS
            yield "".join(
                [
                    f'{row[0]},{row[4]},"'
                    + '","'.join(
                        [(cell if cell[:1] not in formula else "'" + cell).replace('"', '""') for cell in row[5:]]
                    )
                    + f'",{row[1]},{row[2]},"'
                    + row[3].replace('"', '""')
                    + '"\r\n'
                    for row in rows
                ]
            )
    proof = {
        "format": PROOF_FORMAT,
        "schema": schema,
        "exported_at": timezone.now().isoformat(),
        "filters": audit_filter.given,
        "complete": not audit_filter.given,
        "count": count,
        "first_seq": first[0] if first else None,
        "first_prev_hash": first[1] if first else None,
        "first_hash": first[2] if first else None,
        "last_seq": last[0] if last else None,
        "last_hash": last[2] if last else None,
        "head_seq": head[0],
        "head_hash": head[1],
    }
    if fmt == "jsonl":
        yield canonical_json({JSONL_PROOF_KEY: proof}) + "\n"
    else:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow((CSV_PROOF_MARK, canonical_json(proof)))
        yield buffer.getvalue()
