from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from tenants import connections
from tenants.management.commands._base import OperatorCommand
from tenants.models import LLMConnection

DEFAULT_TIMEOUT_SECONDS = 20.0


def _models(values: list[str] | None) -> list[str] | None:
    """``--model a --model b`` and ``--model a,b`` alike."""
    if values is None:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _timeout(value: str | None) -> float | None:
    return None if value is None else _seconds(value)


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise CommandError(f"--timeout must be a number of seconds, not {value!r}") from None


class Command(OperatorCommand):
    help = (
        "Operator-defined LLM connections: the endpoints tenants' agents may use, by name (audited). "
        "Actions: add, set, list, show, remove, grant, revoke."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        add = actions.add_parser("add", help="define a connection")
        add.add_argument("name", help="lowercase letters, digits and dashes; agents refer to it")
        add.add_argument("--base-url", required=True, help="an OpenAI-compatible API, e.g. https://api.openai.com/v1")
        add.add_argument("--key-env", required=True, help="the workers' environment variable that holds the key")
        add.add_argument("--model", action="append", required=True, help="an allowed model (repeat, or a,b)")
        add.add_argument("--timeout", help="seconds per call (default 20; capped below the step lease)")
        add.add_argument("--all-tenants", action="store_true", help="available to every tenant")
        add.add_argument("--tenant", action="append", default=[], help="a tenant's schema that may use it (repeat)")
        add.add_argument("--disabled", action="store_true", help="define it switched off")

        change = actions.add_parser("set", help="change a connection")
        change.add_argument("name")
        change.add_argument("--base-url")
        change.add_argument("--key-env")
        change.add_argument("--model", action="append", help="replaces the allowed models (repeat, or a,b)")
        change.add_argument("--timeout")
        scope = change.add_mutually_exclusive_group()
        scope.add_argument("--all-tenants", dest="available_to_all", action="store_true", default=None)
        scope.add_argument(
            "--chosen-tenants", dest="available_to_all", action="store_false", help="only the tenants granted it"
        )
        state = change.add_mutually_exclusive_group()
        state.add_argument("--enable", dest="enabled", action="store_true", default=None)
        state.add_argument("--disable", dest="enabled", action="store_false")

        listing = actions.add_parser("list", help="list the connections")
        listing.add_argument("--json", action="store_true", help="one JSON object per line")

        show = actions.add_parser("show", help="one connection as JSON")
        show.add_argument("name")

        remove = actions.add_parser("remove", help="delete a connection (agents naming it fail their next step)")
        remove.add_argument("name")

        for verb, text in (("grant", "let tenants use a connection"), ("revoke", "take a connection away")):
            sub = actions.add_parser(verb, help=text)
            sub.add_argument("name")
            sub.add_argument("schemas", nargs="+", metavar="SCHEMA", help="tenant schema names")

    def handle(self, *args: Any, **opts: Any) -> None:
        action = opts["action"]
        actor = self.operator()
        if action == "add":
            conn = connections.llm_connection_create(
                name=opts["name"],
                base_url=opts["base_url"],
                api_key_env=opts["key_env"],
                allowed_models=_models(opts["model"]) or [],
                timeout_seconds=DEFAULT_TIMEOUT_SECONDS if opts["timeout"] is None else _seconds(opts["timeout"]),
                available_to_all=opts["all_tenants"],
                enabled=not opts["disabled"],
                tenants=opts["tenant"],
                actor=actor,
            )
            self.stdout.write(self.style.SUCCESS(f"{conn.name}: added ({_scope(conn)})"))
        elif action == "set":
            conn = connections.llm_connection_update(
                name=opts["name"],
                actor=actor,
                base_url=opts["base_url"],
                api_key_env=opts["key_env"],
                allowed_models=_models(opts["model"]),
                timeout_seconds=_timeout(opts["timeout"]),
                available_to_all=opts["available_to_all"],
                enabled=opts["enabled"],
            )
            self.stdout.write(self.style.SUCCESS(f"{conn.name}: updated ({_scope(conn)})"))
        elif action == "list":
            self._list(as_json=opts["json"])
        elif action == "show":
            self.stdout.write(json.dumps(_as_dict(connections.llm_connection_get(name=opts["name"]))))
        elif action == "remove":
            connections.llm_connection_delete(name=opts["name"], actor=actor)
            self.stdout.write(self.style.SUCCESS(f"{opts['name']}: removed"))
        elif action in ("grant", "revoke"):
            change = connections.llm_connection_grant if action == "grant" else connections.llm_connection_revoke
            conn = change(name=opts["name"], schema_names=opts["schemas"], actor=actor)
            self.stdout.write(self.style.SUCCESS(f"{conn.name}: {_scope(conn)}"))

    def _list(self, *, as_json: bool) -> None:
        found = connections.llm_connection_list()
        if as_json:
            for conn in found:
                self.stdout.write(json.dumps(_as_dict(conn)))
            return
        self.stdout.write(f"{'NAME':<24} {'STATE':<9} {'KEY ENV':<24} {'AVAILABLE TO':<24} BASE URL / MODELS")
        for conn in found:
            state = "enabled" if conn.enabled else "disabled"
            self.stdout.write(
                f"{conn.name:<24} {state:<9} {conn.api_key_env:<24} {_scope(conn):<24} "
                f"{conn.base_url} [{', '.join(conn.allowed_models)}]"
            )
        self.stdout.write(f"{len(found)} connection(s)")


def _scope(conn: LLMConnection) -> str:
    if conn.available_to_all:
        return "all tenants"
    schemas = sorted(t.schema_name for t in conn.tenants.all())
    return ",".join(schemas) if schemas else "no tenant"


def _as_dict(conn: LLMConnection) -> dict[str, Any]:
    return {
        "name": conn.name,
        "base_url": conn.base_url,
        "api_key_env": conn.api_key_env,
        "allowed_models": list(conn.allowed_models),
        "timeout_seconds": conn.timeout_seconds,
        "available_to_all": conn.available_to_all,
        "tenants": sorted(t.schema_name for t in conn.tenants.all()),
        "enabled": conn.enabled,
    }
