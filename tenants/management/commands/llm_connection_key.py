from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from tenants import connections
from tenants.management.commands._base import OperatorCommand


class Command(OperatorCommand):
    help = (
        "Store an LLM connection's API key encrypted in the database (it then wins over the connection's "
        "key variable), read from standard input so that it stays out of the shell's history; --remove "
        "goes back to the variable. Audited, never with the key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the connection")
        parser.add_argument("--remove", action="store_true", help="forget the stored key")

    def handle(self, *args: Any, **options: Any) -> None:
        key = None if options["remove"] else sys.stdin.readline().strip()
        if key == "":
            raise CommandError("give the key on standard input (e.g. printenv OPENAI_API_KEY | manage.py ...)")
        connections.llm_connection_key_set(name=options["name"], api_key=key, actor=self.operator())
        self.stdout.write(f"{options['name']}: key {'removed' if key is None else 'stored, encrypted'}")
