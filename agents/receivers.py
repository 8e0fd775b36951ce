from __future__ import annotations

from typing import Any

from django_tenants.utils import get_public_schema_name

from config.connection import connection


def tools_after_migrate(sender: Any, **kwargs: Any) -> None:
    # A Django hook, not business logic: keep each tenant schema's Tool rows in step with the
    # tool registry after every migrate (tenants and warm-pool spares alike).
    if sender.name != "agents" or connection.schema_name == get_public_schema_name():
        return
    from agents.services import tools_sync

    tools_sync()
