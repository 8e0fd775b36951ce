from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from tenants.management.commands._base import OperatorCommand
from tenants.selectors import spare_count
from tenants.services import spare_pool_fill


class Command(OperatorCommand):
    help = "Top up the warm pool of spare, fully migrated schemas (beat also does this)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--size",
            type=int,
            default=None,
            help=f"target pool size (default VIGIL_SPARE_POOL_SIZE={settings.VIGIL_SPARE_POOL_SIZE})",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["size"] is not None and opts["size"] < 0:
            raise CommandError("--size must be >= 0")
        created = spare_pool_fill(size=opts["size"])
        self.stdout.write(f"created {created} spare schema(s); pool now holds {spare_count()}")
