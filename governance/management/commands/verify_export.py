from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.checkpoints import (
    Checkpoint,
    CheckpointError,
    checkpoint_paths,
    checkpoint_read,
    checkpoint_schemas,
    public_key_parse,
)
from governance.verification import ExportInvalid, export_file_verify


class Command(BaseCommand):
    help = (
        "Check an audit export offline: every event's hash from its body, the links between "
        "consecutive events, and the chain proof at the end; with --checkpoints DIR and "
        "--public-key, also that the export agrees with every signed checkpoint it covers. "
        "Needs no database."
    )
    # Offline: no system check may reach for the database.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a JSONL or CSV export (manage.py export_audit, or the API's)")
        parser.add_argument("--checkpoints", metavar="DIR", help="signed checkpoints (a copy of VIGIL_CHECKPOINT_DIR)")
        parser.add_argument(
            "--public-key",
            metavar="BASE64",
            help="the checkpoints' public key (manage.py audit_checkpoint --public-key)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        checkpoints = self._checkpoints(opts["checkpoints"], opts["public_key"])
        try:
            report = export_file_verify(opts["file"], watch={checkpoint.seq for checkpoint in checkpoints})
        except OSError as exc:
            raise CommandError(f"{opts['file']}: {exc.strerror or exc}") from None
        except ExportInvalid as exc:
            raise CommandError(f"{opts['file']}: INVALID: {exc}") from None
        proof = report.proof
        span = f"seq {proof['first_seq']} to {proof['last_seq']}" if report.events else "no events"
        scope = "the whole chain" if proof["complete"] else f"filtered by {proof['filters']}"
        self.stdout.write(
            f"{opts['file']}: OK, {report.fmt}, {report.events} events ({span}) of {proof['schema']}'s chain, "
            f"{scope}; head at export seq {proof['head_seq']} {proof['head_hash'][:16]}…, "
            f"exported {proof['exported_at']}"
        )
        if opts["checkpoints"]:
            matched = 0
            for checkpoint in checkpoints:
                if checkpoint.schema != proof["schema"] or checkpoint.seq not in report.hashes_at:
                    continue
                if report.hashes_at[checkpoint.seq] != checkpoint.head_hash:
                    raise CommandError(
                        f"{opts['file']}: INVALID: seq {checkpoint.seq} has another hash than the checkpoint "
                        f"of {checkpoint.created_at}: the exported chain was rewritten"
                    )
                matched += 1
            # A checkpoint signed before the export began, past the export's head: the chain
            # was longer then than when it was exported.
            try:
                exported_at = dt.datetime.fromisoformat(str(proof["exported_at"]))
            except ValueError:
                raise CommandError(f"{opts['file']}: INVALID: the proof's exported_at is not a time") from None
            for checkpoint in checkpoints:
                if (
                    checkpoint.schema == proof["schema"]
                    and checkpoint.seq > proof["head_seq"]
                    and _time(checkpoint.created_at) < exported_at
                ):
                    raise CommandError(
                        f"{opts['file']}: INVALID: the checkpoint of {checkpoint.created_at} is at seq "
                        f"{checkpoint.seq}, past the head {proof['head_seq']} exported later: the chain was cut short"
                    )
            self.stdout.write(f"agrees with the {matched} signed checkpoint(s) of {proof['schema']} it covers")

    def _checkpoints(self, directory: str | None, public_key_text: str | None) -> list[Checkpoint]:
        if directory is None:
            return []
        if not public_key_text:
            raise CommandError("--checkpoints needs --public-key: an offline check trusts no key it is not given")
        if not Path(directory).is_dir():
            raise CommandError(f"--checkpoints: {directory} is not a directory")
        try:
            public_key = public_key_parse(public_key_text)
            return [
                checkpoint_read(path, public_key=public_key)
                for schema in checkpoint_schemas(Path(directory))
                for path in checkpoint_paths(Path(directory), schema)
            ]
        except CheckpointError as exc:
            raise CommandError(f"--checkpoints: {exc}") from None


def _time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--checkpoints: {text!r} is not a time") from None
