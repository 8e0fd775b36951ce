from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.checkpoints import checkpoints_take, key_new, public_key_text, signing_key


class Command(BaseCommand):
    help = (
        "Sign and write a checkpoint of every audit chain (or --tenant's) to VIGIL_CHECKPOINT_DIR; "
        "--public-key prints the key verify_audit --checkpoints needs, --new-key makes a private key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SCHEMA", help="only this schema's chain")
        parser.add_argument("--dir", metavar="DIR", help="instead of VIGIL_CHECKPOINT_DIR")
        parser.add_argument("--public-key", action="store_true", help="print the public key of the signing key")
        parser.add_argument(
            "--new-key", action="store_true", help="print a new private key for VIGIL_CHECKPOINT_KEY and stop"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["new_key"]:
            self.stdout.write(key_new())
            return
        key = signing_key()
        if opts["public_key"]:
            self.stdout.write(public_key_text(key.public_key()))
            return
        directory = Path(opts["dir"] or settings.VIGIL_CHECKPOINT_DIR)
        written, refused = checkpoints_take(directory=directory, key=key, schema=opts["tenant"])
        if opts["tenant"] and not written and not refused:
            raise CommandError(f"no tenant with schema {opts['tenant']!r}")
        for result in written:
            if result.path is None:
                self.stdout.write(f"{result.schema}: head unchanged at seq {result.seq}, no new checkpoint")
            else:
                self.stdout.write(f"{result.schema}: checkpoint at seq {result.seq}: {result.path}")
        if refused:
            for problem in refused:
                self.stdout.write(self.style.ERROR(problem))
            raise CommandError(f"{len(refused)} chain(s) refused a checkpoint")
