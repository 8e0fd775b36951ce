"""`manage.py llm_connection`: operators define the LLM endpoints tenants' agents may use,
and grant them to tenants. Output, exit status, stored rows and the public audit chain."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.models import LLMConnection
from tests.conftest import BASE_DIR
from tests.tenants.stored import audit_head, audit_since

ADD = [
    "llm_connection",
    "add",
    "house",
    "--base-url",
    "https://llm.example/v1",
    "--key-env",
    "HOUSE_LLM_KEY",
    "--model",
    "gpt-4o-mini",
    "--model",
    "gpt-4o",
]


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _stored(name: str = "house") -> dict[str, object]:
    conn = LLMConnection.objects.get(name=name)
    return {
        "base_url": conn.base_url,
        "api_key_env": conn.api_key_env,
        "allowed_models": conn.allowed_models,
        "timeout_seconds": conn.timeout_seconds,
        "available_to_all": conn.available_to_all,
        "tenants": sorted(conn.tenants.values_list("schema_name", flat=True)),
        "enabled": conn.enabled,
    }


def test_add_stores_the_connection_granted_to_the_tenants_named_and_audits_it_as_the_operator(db: None) -> None:
    public_seq = audit_head("public")

    output = _run(*ADD, "--tenant", "acme", "--timeout", "12.5")

    assert output.strip() == "house: added (acme)"
    assert _stored() == {
        "base_url": "https://llm.example/v1",
        "api_key_env": "HOUSE_LLM_KEY",
        "allowed_models": ["gpt-4o-mini", "gpt-4o"],
        "timeout_seconds": 12.5,
        "available_to_all": False,
        "tenants": ["acme"],
        "enabled": True,
    }
    [event] = audit_since("public", public_seq)
    assert (event.verb, event.target_type, event.target_id) == ("llm_connection.created", "llm_connection", "house")
    assert event.actor_label.startswith("operator:")
    assert event.data["api_key_env"] == "HOUSE_LLM_KEY" and event.data["tenants"] == ["acme"]


def test_models_may_be_given_comma_separated_and_all_tenants_at_once(db: None) -> None:
    _run(
        "llm_connection",
        "add",
        "shared",
        "--base-url",
        "http://127.0.0.1:8080/v1",
        "--key-env",
        "SHARED_KEY",
        "--model",
        "llama-3.1-8b,qwen2.5:7b",
        "--all-tenants",
        "--disabled",
    )

    stored = _stored("shared")
    assert (stored["allowed_models"], stored["available_to_all"], stored["enabled"]) == (
        ["llama-3.1-8b", "qwen2.5:7b"],
        True,
        False,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--base-url", "file:///etc/passwd"], "base_url: must be an http(s) URL"),
        (["--base-url", "https://user:pw@llm.example/v1"], "base_url: must not carry credentials"),
        (["--key-env", "path"], "api_key_env: must be an environment variable name"),
        (["--key-env", "DATABASE_URL"], "api_key_env: DATABASE_URL belongs to the application's own configuration"),
        (["--key-env", "VIGIL_SECRET_KEY"], "api_key_env: VIGIL_SECRET_KEY belongs to the application's own"),
        (["--model", "gpt 4o"], "allowed_models: not model names: gpt 4o"),
        (["--timeout", "0"], "timeout_seconds: must be a number of seconds from 0.1 to 600"),
        (["--timeout", "soon"], "--timeout must be a number of seconds, not 'soon'"),
        (["--tenant", "nope"], "no tenant with schema 'nope'"),
    ],
    ids=[
        "scheme",
        "credentials",
        "env-format",
        "database-url",
        "secret-key",
        "model",
        "timeout",
        "timeout-text",
        "tenant",
    ],
)
def test_add_refuses_bad_values_naming_the_field_and_stores_nothing(db: None, change: list[str], message: str) -> None:
    public_seq = audit_head("public")
    args = list(ADD)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]

    with pytest.raises(CommandError, match=re.escape(message)) as refused:
        _run(*args)

    assert refused.value.returncode == 1
    assert not LLMConnection.objects.filter(name="house").exists()
    assert audit_since("public", public_seq) == []


def test_add_refuses_a_bad_name_and_a_name_in_use(db: None) -> None:
    with pytest.raises(CommandError, match="invalid connection name 'House_1'"):
        _run("llm_connection", "add", "House_1", *ADD[3:])
    _run(*ADD)

    with pytest.raises(CommandError, match="an LLM connection named 'house' exists already"):
        _run(*ADD)
    assert LLMConnection.objects.filter(name="house").count() == 1


def test_grant_and_revoke_change_the_tenants_and_are_audited(db: None) -> None:
    _run(*ADD)
    public_seq = audit_head("public")

    assert _run("llm_connection", "grant", "house", "acme", "beta").strip() == "house: acme,beta"
    assert _run("llm_connection", "revoke", "house", "acme").strip() == "house: beta"

    assert _stored()["tenants"] == ["beta"]
    events = audit_since("public", public_seq)
    assert [(e.verb, e.data["tenants"]) for e in events] == [
        ("llm_connection.updated", {"from": [], "to": ["acme", "beta"]}),
        ("llm_connection.updated", {"from": ["acme", "beta"], "to": ["beta"]}),
    ]


def test_revoking_a_tenant_that_was_not_granted_and_granting_an_unknown_one_are_refused(db: None) -> None:
    _run(*ADD, "--tenant", "acme")

    with pytest.raises(CommandError, match="'house' is not granted to 'beta'"):
        _run("llm_connection", "revoke", "house", "beta")
    with pytest.raises(CommandError, match="no tenant with schema 'nope'"):
        _run("llm_connection", "grant", "house", "beta", "nope")

    assert _stored()["tenants"] == ["acme"]


def test_set_changes_only_what_it_is_given_and_audits_the_changes(db: None) -> None:
    _run(*ADD, "--tenant", "acme")
    public_seq = audit_head("public")

    assert _run("llm_connection", "set", "house", "--disable", "--all-tenants", "--model", "gpt-4o").strip() == (
        "house: updated (all tenants)"
    )

    stored = _stored()
    assert (stored["enabled"], stored["available_to_all"], stored["allowed_models"]) == (False, True, ["gpt-4o"])
    assert (stored["base_url"], stored["api_key_env"], stored["tenants"]) == (
        "https://llm.example/v1",
        "HOUSE_LLM_KEY",
        ["acme"],
    )
    [event] = audit_since("public", public_seq)
    assert event.data == {
        "enabled": {"from": True, "to": False},
        "available_to_all": {"from": False, "to": True},
        "allowed_models": {"from": ["gpt-4o-mini", "gpt-4o"], "to": ["gpt-4o"]},
    }


def test_set_refuses_a_bad_value_and_changes_nothing(db: None) -> None:
    _run(*ADD)
    before = _stored()

    with pytest.raises(CommandError, match="api_key_env: must be an environment variable name"):
        _run("llm_connection", "set", "house", "--key-env", "1BAD", "--disable")

    assert _stored() == before


def test_list_prints_each_connection_with_its_key_variable_and_tenants(db: None) -> None:
    _run(*ADD, "--tenant", "beta")

    lines = _run("llm_connection", "list").splitlines()
    rows = [json.loads(line) for line in _run("llm_connection", "list", "--json").splitlines()]

    # Other tests of the session may have committed connections of their own.
    assert lines[0].split()[:2] == ["NAME", "STATE"]
    assert [line.split()[:4] for line in lines if line.startswith("house ")] == [
        ["house", "enabled", "HOUSE_LLM_KEY", "beta"]
    ]
    assert lines[-1] == f"{LLMConnection.objects.count()} connection(s)" and len(rows) == len(lines) - 2
    assert [row for row in rows if row["name"] == "house"] == [
        {
            "name": "house",
            "base_url": "https://llm.example/v1",
            "api_key_env": "HOUSE_LLM_KEY",
            "allowed_models": ["gpt-4o-mini", "gpt-4o"],
            "timeout_seconds": 20.0,
            "available_to_all": False,
            "tenants": ["beta"],
            "enabled": True,
        }
    ]


def test_remove_deletes_the_connection_and_an_unknown_name_is_an_error(db: None) -> None:
    _run(*ADD, "--tenant", "acme")
    public_seq = audit_head("public")

    assert _run("llm_connection", "remove", "house").strip() == "house: removed"
    with pytest.raises(CommandError, match="no LLM connection named 'house'") as refused:
        _run("llm_connection", "remove", "house")

    assert refused.value.returncode == 1
    assert not LLMConnection.objects.filter(name="house").exists()
    [event] = audit_since("public", public_seq)
    assert (event.verb, event.data["tenants"]) == ("llm_connection.deleted", ["acme"])


def test_bad_input_on_the_command_line_prints_the_problem_and_exits_1(celery_env: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "manage.py", *ADD[:-4], "--model", "gpt-4o", "--key-env", "SECRET KEY"],
        cwd=BASE_DIR,
        env=celery_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().startswith("CommandError: invalid LLM connection: api_key_env: must be an environment")
    assert "Traceback" not in run.stderr
