"""Signed checkpoints of the audit chains, kept outside the database.

The hash chain proves that no event was altered, removed or inserted *relative to the
others*; someone who can write the table (a database superuser) could still rewrite the
whole tail consistently, or cut it short, and the chain would verify. A checkpoint records
a chain's head (schema, seq, head hash, time) signed with an Ed25519 key that the database
never sees, in a file outside it: ``verify_audit --checkpoints DIR`` then proves each chain
still extends every checkpoint (the event at the checkpoint's seq still has its hash).

Written every VIGIL_CHECKPOINT_MINUTES by Celery beat (``governance.audit_checkpoint``) and
on demand by ``manage.py audit_checkpoint``, one file per chain whose head moved:
``VIGIL_CHECKPOINT_DIR/<schema>/<seq, 20 digits>-<UTC time>.json``, written to a temporary
file and renamed, so a reader never sees half a checkpoint. Only operator settings and a
schema name checked against ``SCHEMA_NAME`` make the path. A checkpoint is signed only after
the chain since the previous checkpoint verified: a key never vouches for a broken chain.

The key: VIGIL_CHECKPOINT_KEY, the raw 32-byte Ed25519 private key in base64 (make one with
``manage.py audit_checkpoint --new-key``); development mode creates one once under .run/
(VIGIL_CHECKPOINT_KEY_FILE). Verifying needs only the public key (``--public-key``), which is
what an auditor holds. Point VIGIL_CHECKPOINT_DIR at storage the database's administrators
cannot rewrite (another host's mount, a write-once bucket sync) for the proof to mean more.

File format (JSON): ``format`` (1), ``schema``, ``seq``, ``head_hash``, ``created_at``
(ISO 8601 UTC), ``key_id`` (first 16 hex digits of sha256 of the public key) and
``signature``: base64 Ed25519 signature of the canonical JSON of the other fields.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django_tenants.utils import get_public_schema_name, get_tenant_model

from config.connection import connection
from governance.export import chain_head
from governance.hashchain import canonical_json
from governance.verification import audit_chain_verify

logger = logging.getLogger(__name__)

FORMAT = 1
# django-tenants' own rule for schema names, narrowed to lowercase: nothing else reaches a path.
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
FILE_NAME = re.compile(r"^(\d{20})-(\d{8}T\d{12}Z)\.json$")
_FIELDS = ("format", "schema", "seq", "head_hash", "created_at", "key_id", "signature")
_HASH = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(Exception):
    """A checkpoint that cannot be written, read or trusted; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    format: int
    schema: str
    seq: int
    head_hash: str
    created_at: str
    key_id: str
    signature: str = ""

    def signed_text(self) -> bytes:
        fields = asdict(self)
        del fields["signature"]
        return canonical_json(fields).encode("utf-8")

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


# ------------------------------------------------------------------ keys
def key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def key_new() -> str:
    """A new private key, as VIGIL_CHECKPOINT_KEY holds it."""
    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def private_key_parse(text: str, *, source: str = "VIGIL_CHECKPOINT_KEY") -> Ed25519PrivateKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        if len(raw) != 32:
            raise ValueError
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(
            f"{source} is not an Ed25519 private key (32 raw bytes in base64; "
            "make one with: manage.py audit_checkpoint --new-key)"
        ) from None


def public_key_parse(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        if len(raw) != 32:
            raise ValueError
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise CheckpointError("the public key is not an Ed25519 public key (32 raw bytes in base64)") from None


def public_key_text(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _development_key() -> str:
    """The checkout's own key, created once (O_EXCL: concurrent first uses agree)."""
    path = Path(settings.VIGIL_CHECKPOINT_KEY_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(key_new())
    for _ in range(100):  # a concurrent creator may not have written it yet
        text = path.read_text().strip()
        if text:
            return text
    raise ImproperlyConfigured(f"{path} is empty: delete it to create a new development key")


def signing_key() -> Ed25519PrivateKey:
    """The key of VIGIL_CHECKPOINT_KEY; in development mode without it, the checkout's own."""
    text = settings.VIGIL_CHECKPOINT_KEY
    if not text:
        if not settings.DEVELOPMENT:
            raise ImproperlyConfigured("VIGIL_CHECKPOINT_KEY is not set: audit checkpoints cannot be signed")
        return private_key_parse(_development_key(), source=str(settings.VIGIL_CHECKPOINT_KEY_FILE))
    return private_key_parse(text)


# ------------------------------------------------------------------ files
def schema_directory(directory: Path, schema: str) -> Path:
    if not SCHEMA_NAME.match(schema):
        raise CheckpointError(f"{schema!r} is not a schema name")
    return directory / schema


def checkpoint_write(checkpoint: Checkpoint, *, directory: Path) -> Path:
    """Write ``checkpoint`` atomically (temporary file, fsync, rename, fsync of the folder)."""
    folder = schema_directory(directory, checkpoint.schema)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    moment = dt.datetime.fromisoformat(checkpoint.created_at).astimezone(dt.UTC)
    path = folder / f"{checkpoint.seq:020d}-{moment:%Y%m%dT%H%M%S%f}Z.json"
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".writing-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(checkpoint.as_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)
    return path


def checkpoint_read(path: Path, *, public_key: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint in ``path``, its signature checked against ``public_key``. Raises
    CheckpointError for a file that is not a checkpoint or is not signed by that key."""
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: unreadable ({exc})") from None
    if not isinstance(fields, dict) or set(fields) != set(_FIELDS):
        raise CheckpointError(f"{path.name}: a checkpoint has exactly the fields {', '.join(_FIELDS)}")
    seq = fields["seq"]
    if (
        fields["format"] != FORMAT
        or not isinstance(fields["schema"], str)
        or not SCHEMA_NAME.match(fields["schema"])
        or not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 0
        or not isinstance(fields["head_hash"], str)
        or not _HASH.match(fields["head_hash"])
        or not all(isinstance(fields[name], str) for name in ("created_at", "key_id", "signature"))
    ):
        raise CheckpointError(f"{path.name}: malformed checkpoint")
    checkpoint = Checkpoint(**fields)
    try:
        public_key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.signed_text())
    except (InvalidSignature, binascii.Error, ValueError):
        raise CheckpointError(f"{path.name}: not signed by the checkpoint key (key {key_id(public_key)})") from None
    if checkpoint.key_id != key_id(public_key):
        raise CheckpointError(f"{path.name}: names key {checkpoint.key_id}, signed by {key_id(public_key)}")
    return checkpoint


def checkpoint_paths(directory: Path, schema: str) -> list[Path]:
    """The checkpoint files of ``schema``'s chain, oldest first (by seq, then time)."""
    folder = schema_directory(directory, schema)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if FILE_NAME.match(path.name))


def checkpoint_schemas(directory: Path) -> list[str]:
    """The schemas that have a folder of checkpoints in ``directory``."""
    if not directory.is_dir():
        return []
    return sorted(path.name for path in directory.iterdir() if path.is_dir() and SCHEMA_NAME.match(path.name))


# ------------------------------------------------------------------ against the database
def checkpoint_check(checkpoint: Checkpoint) -> str | None:
    """Why the current schema's chain does not extend ``checkpoint``; None when it does (the
    event at its seq holds its hash). The rest of the chain is ``audit_chain_verify``'s."""
    if checkpoint.seq == 0:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT hash FROM governance_auditevent WHERE seq = %s", [checkpoint.seq])
        row = cursor.fetchone()
        if row is None:
            cursor.execute("SELECT max(seq) FROM governance_auditevent")
            head = cursor.fetchone()
            end = head[0] if head and head[0] is not None else 0
            return f"seq {checkpoint.seq} is missing (the chain ends at seq {end}): truncated"
    if row[0] != checkpoint.head_hash:
        return f"seq {checkpoint.seq} has hash {row[0][:16]}…, the checkpoint {checkpoint.head_hash[:16]}…: rewritten"
    return None


@dataclass(frozen=True)
class CheckpointResult:
    schema: str
    seq: int
    path: Path | None  # None: the head has not moved since the last checkpoint


def checkpoint_take(*, directory: Path, key: Ed25519PrivateKey) -> CheckpointResult:
    """Checkpoint the current schema's chain: verify it since the latest checkpoint this key
    signed (from the start when there is none), then sign and write its head. Raises
    CheckpointError when the chain does not verify or no longer extends that checkpoint."""
    schema = connection.schema_name
    public_key = key.public_key()
    latest = None
    for path in reversed(checkpoint_paths(directory, schema)):
        try:
            latest = checkpoint_read(path, public_key=public_key)
            break
        except CheckpointError as exc:
            logger.warning("audit.checkpoint_unreadable", extra={"schema": schema, "error": str(exc)})
    with transaction.atomic():
        head_seq, head_hash = chain_head()
        if latest is not None:
            problem = checkpoint_check(latest)
            if problem:
                raise CheckpointError(f"{schema}: the chain no longer extends its checkpoint: {problem}")
            if (latest.seq, latest.head_hash) == (head_seq, head_hash):
                return CheckpointResult(schema, head_seq, None)
        report = audit_chain_verify(after=(latest.seq, latest.head_hash) if latest else None)
    if not report.ok:
        raise CheckpointError(f"{schema}: chain broken at seq {report.broken_seq}: {report.reason}")
    # The walk may have gone past head_seq (events appended meanwhile): sign what was read then.
    unsigned = Checkpoint(
        format=FORMAT,
        schema=schema,
        seq=head_seq,
        head_hash=head_hash,
        created_at=dt.datetime.now(dt.UTC).isoformat(),
        key_id=key_id(public_key),
    )
    signature = base64.b64encode(key.sign(unsigned.signed_text())).decode()
    checkpoint = Checkpoint(**{**asdict(unsigned), "signature": signature})
    path = checkpoint_write(checkpoint, directory=directory)
    logger.info("audit.checkpoint", extra={"schema": schema, "seq": head_seq})
    return CheckpointResult(schema, head_seq, path)


def chains() -> Iterator[Any]:
    """Every tenant with an audit chain (spares have none of their own yet), the public
    schema included; the connection is set to each in turn and left on public."""
    tenants = get_tenant_model().objects.exclude(status="spare").order_by("schema_name")
    try:
        for tenant in tenants:
            if tenant.schema_name == get_public_schema_name():
                connection.set_schema_to_public()
            else:
                connection.set_tenant(tenant)
            yield tenant
    finally:
        connection.set_schema_to_public()


def checkpoints_take(
    *, directory: Path | None = None, key: Ed25519PrivateKey | None = None, schema: str | None = None
) -> tuple[list[CheckpointResult], list[str]]:
    """Checkpoint every chain (or ``schema``'s): what was written, and the chains refused."""
    directory = Path(directory or settings.VIGIL_CHECKPOINT_DIR)
    key = key or signing_key()
    written, refused = [], []
    for tenant in chains():
        if schema is not None and tenant.schema_name != schema:
            continue
        try:
            written.append(checkpoint_take(directory=directory, key=key))
        except CheckpointError as exc:
            logger.error("audit.checkpoint_refused", extra={"schema": tenant.schema_name, "error": str(exc)})
            refused.append(str(exc))
    return written, refused
