"""Apps import downward only: hitl may import agents, agents may import tenants, never the
reverse. A lower app reaches a higher one through a hook it defines and the higher app fills
in at startup (agents.hooks for approval requests, tenants.hooks for demo content)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agents.hooks import approvals
from hitl import selectors as hitl_selectors
from hitl import services as hitl_services
from tenants.hooks import _demo_content

ROOT = Path(__file__).resolve().parents[2]


def _imported_apps(app: str) -> dict[str, set[str]]:
    """For each module of ``app`` (migrations included), the top-level packages it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / app).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(("app", "above"), [("agents", {"hitl", "knowledge"}), ("tenants", {"agents", "hitl"})])
def test_an_app_imports_no_app_above_it(app: str, above: set[str]) -> None:
    upward = {module: sorted(names & above) for module, names in _imported_apps(app).items() if names & above}

    assert upward == {}


def test_hitl_fills_in_the_approval_hooks_of_agents_at_startup() -> None:
    hooks = approvals()

    assert (hooks.open, hooks.decided, hooks.close) == (
        hitl_services.approval_open,
        hitl_selectors.approval_decided_for,
        hitl_services.approvals_close,
    )


def test_agents_registers_its_demo_content_with_tenants_at_startup() -> None:
    from agents.demo import demo_content_create

    assert demo_content_create in _demo_content
