from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.errors import VigilError
from governance.actors import Actor
from governance.context import new_correlation_id, set_correlation_id


class OperatorCommand(BaseCommand):
    """Base of the operators' commands: a correlation id per run, the operator as actor, and
    domain errors turned into a clear message with a non-zero exit code."""

    def operator(self) -> Actor:
        try:
            who = getpass.getuser()
        except Exception:  # no passwd entry (containers): still an operator
            who = "unknown"
        return Actor.operator(who)

    def execute(self, *args: Any, **options: Any) -> Any:
        set_correlation_id(new_correlation_id())
        try:
            return super().execute(*args, **options)
        except VigilError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            set_correlation_id(None)
