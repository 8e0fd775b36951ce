"""Escalation policies as versioned data (F-HITL-12): conditions → gate, approvers, quorum,
SLA, ladder and terminal action. A ``Policy`` names a rule, says whether it applies
(``enabled``), whether it only records what it would require (``shadow``) and its precedence
(``order``, lower first); what it says lives in ``PolicyVersion`` rows that are never edited:
a change is a new version. Every change is audited.

Which policy decides: at each tool call the built-in rules do not deny (agents.authorization),
the first enabled non-shadow policy whose conditions match decides the gate
(registered as agents.hooks' ``gate``); without one, the built-in verdict stands. Matching
shadow policies are recorded with the step (or on the request) and change nothing.

Limits that no policy lifts:
- the built-in denials (grants, the agent's ceiling) stand;
- a policy never lowers the deciding role: the request needs the stronger of the built-in
  rule's role and the policy's approver role;
- gate ``none`` is refused for a policy that may match a tool above ``GATE_NONE_MAX_LEVEL``
  (admin-level tools always wait for a human);
- terminal ``auto_approve`` is refused unless the policy only matches low risk: tools at
  privilege level ``LOW_RISK_MAX_LEVEL`` or below (read only, execute safe: what an automatic
  agent runs without approval anyway). The ladder checks it again on the request itself.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F

from agents.authorization import NEEDS_APPROVAL, Verdict
from agents.hooks import Gate
from agents.models import PrivilegeLevel
from config.connection import connection
from config.errors import VigilError
from governance import access
from governance.access import Capability, Role
from governance.actors import Actor
from governance.services import audit_record
from hitl.models import ApprovalPriority, Policy, PolicyGate, PolicyTerminal, PolicyVersion
from hitl.sla import DEFAULT_LADDER, SLA_MINUTES, Ladder, TerminalAction
from tenants.models import Tenant
from tenants.tiers import Tier

if TYPE_CHECKING:
    from agents.models import Agent
    from agents.tools import ToolSpec

LOW_RISK_MAX_LEVEL = PrivilegeLevel.EXECUTE_SAFE
GATE_NONE_MAX_LEVEL = PrivilegeLevel.EXECUTE_RISKY
# Writing policies is an admin's: they decide who approves what, like an admin-tier reviewer.
POLICY_WRITE = Capability.REVIEW_AS_ADMIN
APPROVER_ROLES: tuple[str, ...] = (Role.REVIEWER.value, Role.ADMIN.value)  # weakest first
PRIORITY_BY_NAME: dict[str, int] = {label: value for value, label in ApprovalPriority.choices}
OPERATORS = ("gt", "gte", "lt", "lte", "eq")
CONDITION_KEYS = ("agents", "tools", "privilege_min", "privilege_max", "tiers", "arguments")
MAX_QUORUM = 10
MAX_LADDER_STEPS = 5
MAX_SLA_MINUTES = 30 * 24 * 60
CONTENT_FIELDS = ("conditions", "gate", "approver_role", "quorum", "priority", "sla_minutes", "ladder", "terminal")


class PolicyInvalid(VigilError):
    """A policy or version that fails validation; ``extra.fields`` names each bad field."""

    code = "policy_invalid"
    status = 400


class PolicyForbidden(VigilError):
    code = "policy_forbidden"
    status = 403


class PolicyNotFound(VigilError):
    code = "policy_not_found"
    status = 404


# ----------------------------------------------------------------------------- validation
def _names(value: Any, field: str, errors: dict[str, str], *, allowed: tuple[str, ...] | None = None) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        errors[field] = "a list of names"
        return []
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            errors[field] = f"unknown: {', '.join(unknown)}; one of {', '.join(allowed)}"
    return sorted(set(value))


def _level(value: Any, field: str, errors: dict[str, str], default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= PrivilegeLevel.SUPER_ADMIN:
        errors[field] = "a privilege level from 1 to 5"
        return default
    return value


def _thresholds(value: Any, errors: dict[str, str]) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors["conditions.arguments"] = 'a list of thresholds like {"argument": "amount", "gt": 100}'
        return []
    cleaned: list[dict[str, Any]] = []
    for n, item in enumerate(value):
        field = f"conditions.arguments[{n}]"
        if not isinstance(item, dict) or not isinstance(item.get("argument"), str) or not item["argument"]:
            errors[field] = 'needs "argument": the name of a numeric argument'
            continue
        ops = {k: v for k, v in item.items() if k != "argument"}
        if not ops or set(ops) - set(OPERATORS):
            errors[field] = f"needs one or more of {', '.join(OPERATORS)}, nothing else"
            continue
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in ops.values()):
            errors[field] = "thresholds are numbers"
            continue
        cleaned.append({"argument": item["argument"], **{k: ops[k] for k in OPERATORS if k in ops}})
    return cleaned


def _conditions(value: Any, errors: dict[str, str]) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors["conditions"] = "an object: " + ", ".join(CONDITION_KEYS)
        return {}
    unknown = sorted(set(value) - set(CONDITION_KEYS))
    if unknown:
        errors["conditions"] = f"unknown keys {', '.join(unknown)}; the keys are {', '.join(CONDITION_KEYS)}"
    low = _level(value.get("privilege_min"), "conditions.privilege_min", errors, 1)
    high = _level(value.get("privilege_max"), "conditions.privilege_max", errors, int(PrivilegeLevel.SUPER_ADMIN))
    if low > high:
        errors["conditions.privilege_max"] = "must not be below privilege_min"
    cleaned: dict[str, Any] = {
        "agents": _names(value.get("agents"), "conditions.agents", errors),
        "tools": _names(value.get("tools"), "conditions.tools", errors),
        "tiers": _names(value.get("tiers"), "conditions.tiers", errors, allowed=tuple(Tier.values)),
        "privilege_min": low,
        "privilege_max": high,
        "arguments": _thresholds(value.get("arguments"), errors),
    }
    return cleaned


def _sla(value: Any, errors: dict[str, str]) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors["sla_minutes"] = "an object: minutes by priority (critical, high, medium, low)"
        return {}
    cleaned: dict[str, int] = {}
    for name, minutes in value.items():
        if name not in PRIORITY_BY_NAME:
            errors[f"sla_minutes.{name}"] = f"not a priority; one of {', '.join(PRIORITY_BY_NAME)}"
        elif not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_SLA_MINUTES:
            errors[f"sla_minutes.{name}"] = f"whole minutes from 1 to {MAX_SLA_MINUTES}"
        else:
            cleaned[name] = minutes
    return cleaned


def _ladder(value: Any, errors: dict[str, str]) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict) or set(value) - {"reminder_share", "steps"}:
        errors["ladder"] = 'an object: {"reminder_share": 0.5, "steps": [{"role": "admin", "raise_priority": true}]}'
        return {}
    share = value.get("reminder_share", DEFAULT_LADDER.reminder_share)
    if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share < 1:
        errors["ladder.reminder_share"] = "a share of the SLA between 0 and 1 (exclusive)"
        share = DEFAULT_LADDER.reminder_share
    steps = value.get("steps", [])
    if not isinstance(steps, list) or len(steps) > MAX_LADDER_STEPS:
        errors["ladder.steps"] = f"a list of at most {MAX_LADDER_STEPS} escalation steps"
        steps = []
    cleaned_steps: list[dict[str, Any]] = []
    for n, step in enumerate(steps):
        field = f"ladder.steps[{n}]"
        if not isinstance(step, dict) or set(step) - {"role", "raise_priority"}:
            errors[field] = 'an object: {"role": "reviewer" or "admin", "raise_priority": true or false}'
            continue
        role = step.get("role", Role.ADMIN.value)
        if role not in APPROVER_ROLES:
            errors[f"{field}.role"] = f"one of {', '.join(APPROVER_ROLES)}"
            continue
        raise_priority = step.get("raise_priority", True)
        if not isinstance(raise_priority, bool):
            errors[f"{field}.raise_priority"] = "true or false"
            continue
        cleaned_steps.append({"role": role, "raise_priority": raise_priority})
    return {"reminder_share": float(share), "steps": cleaned_steps}


def policy_content_validate(content: Any) -> dict[str, Any]:
    """A version's content, checked and normalised, or PolicyInvalid naming every bad field
    (``extra.fields``: field → what is expected)."""
    errors: dict[str, str] = {}
    if not isinstance(content, dict):
        raise PolicyInvalid("a policy version is an object", fields={"content": "an object"})
    unknown = sorted(set(content) - set(CONTENT_FIELDS))
    if unknown:
        errors["content"] = f"unknown fields {', '.join(unknown)}; the fields are {', '.join(CONTENT_FIELDS)}"
    conditions = _conditions(content.get("conditions"), errors)
    gate = content.get("gate", PolicyGate.APPROVAL.value)
    if gate not in PolicyGate.values:
        errors["gate"] = f"one of {', '.join(PolicyGate.values)}"
    role = content.get("approver_role", Role.REVIEWER.value)
    if role not in APPROVER_ROLES:
        errors["approver_role"] = f"one of {', '.join(APPROVER_ROLES)}"
    quorum = content.get("quorum", 1)
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= MAX_QUORUM:
        errors["quorum"] = f"a number of distinct approvers from 1 to {MAX_QUORUM}"
    priority = content.get("priority")
    if priority is not None and priority not in PRIORITY_BY_NAME:
        errors["priority"] = f"empty (the task's) or one of {', '.join(PRIORITY_BY_NAME)}"
    terminal = content.get("terminal", PolicyTerminal.EXPIRE.value)
    if terminal not in PolicyTerminal.values:
        errors["terminal"] = f"one of {', '.join(PolicyTerminal.values)}"
    sla = _sla(content.get("sla_minutes"), errors)
    ladder = _ladder(content.get("ladder"), errors)
    high = conditions.get("privilege_max", PrivilegeLevel.SUPER_ADMIN)
    if gate == PolicyGate.NONE and high > GATE_NONE_MAX_LEVEL:
        errors["gate"] = (
            f"none needs conditions.privilege_max of {GATE_NONE_MAX_LEVEL} or less: "
            "admin-level tools always wait for a human"
        )
    if terminal == PolicyTerminal.AUTO_APPROVE and high > LOW_RISK_MAX_LEVEL:
        errors["terminal"] = (
            f"auto_approve is for low risk only: set conditions.privilege_max to {LOW_RISK_MAX_LEVEL} or less"
        )
    if errors:
        raise PolicyInvalid(
            "the policy is not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors
        )
    return {
        "conditions": conditions,
        "gate": gate,
        "approver_role": role,
        "quorum": quorum,
        "priority": PRIORITY_BY_NAME[priority] if priority is not None else None,
        "sla_minutes": sla,
        "ladder": ladder,
        "terminal": terminal,
    }


def version_content(version: PolicyVersion) -> dict[str, Any]:
    """A version's content in the shape ``policy_content_validate`` accepts (the API's)."""
    return {
        "conditions": version.conditions,
        "gate": version.gate,
        "approver_role": version.approver_role,
        "quorum": version.quorum,
        "priority": ApprovalPriority(version.priority).label if version.priority else None,
        "sla_minutes": version.sla_minutes,
        "ladder": version.ladder,
        "terminal": version.terminal,
    }


# ------------------------------------------------------------------------------- changes
def _writer(user: User | AnonymousUser | None) -> User | None:
    if not access.user_may(user, POLICY_WRITE):
        raise PolicyForbidden("changing approval policies needs the admin role", rule="role", required_role="admin")
    return user if isinstance(user, User) else None


def _flags(*, name: str | None, description: str | None, order: Any, errors: dict[str, str]) -> None:
    if name is not None and (not name or len(name) > 100 or not all(c.isalnum() or c in "-_" for c in name)):
        errors["name"] = "letters, digits, - and _ (at most 100)"
    if description is not None and len(description) > 500:
        errors["description"] = "at most 500 characters"
    if order is not None and (not isinstance(order, int) or isinstance(order, bool) or not 0 <= order <= 1_000_000):
        errors["order"] = "a whole number from 0 to 1000000 (lower first)"


def _version_add(policy: Policy, content: dict[str, Any], *, user: User | None, reason: str) -> PolicyVersion:
    number = (policy.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    version = PolicyVersion.objects.create(
        policy=policy, version=number, reason=reason[:500], created_by=user, **content
    )
    policy.current = version
    policy.save(update_fields=["current", "updated_at"])
    return version


@transaction.atomic
def policy_create(
    *,
    name: str,
    content: Any,
    user: User | AnonymousUser | None,
    description: str = "",
    enabled: bool = True,
    shadow: bool = False,
    order: int = 100,
    reason: str = "",
) -> Policy:
    """A new policy with its version 1. Raises PolicyForbidden (403), PolicyInvalid (400)."""
    return policy_create_within(
        name=name,
        content=content,
        author=_writer(user),
        actor=Actor.for_user(user),
        description=description,
        enabled=enabled,
        shadow=shadow,
        order=order,
        reason=reason,
    )


def policy_create_within(
    *,
    name: str,
    content: Any,
    author: User | None,
    actor: Actor,
    description: str = "",
    enabled: bool = True,
    shadow: bool = False,
    order: int = 100,
    reason: str = "",
) -> Policy:
    """``policy_create`` inside the caller's transaction and without the access check: for
    the services above, and for content the platform ships (a demo tenant's policies)."""
    errors: dict[str, str] = {}
    _flags(name=name, description=description, order=order, errors=errors)
    if not errors and Policy.objects.filter(name=name).exists():
        errors["name"] = "already in use"
    try:
        cleaned = policy_content_validate(content)
    except PolicyInvalid as exc:
        errors.update(exc.extra["fields"])
    if errors:
        raise PolicyInvalid(
            "the policy is not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors
        )
    policy = Policy.objects.create(
        name=name, description=description, enabled=bool(enabled), shadow=bool(shadow), order=order
    )
    version = _version_add(policy, cleaned, user=author, reason=reason)
    audit_record(
        actor=actor,
        verb="policy.created",
        target_type="policy",
        target_id=policy.pk,
        data={
            "name": name,
            "enabled": policy.enabled,
            "shadow": policy.shadow,
            "order": order,
            "version": version.version,
            "content": version_content(version),
            "reason": reason[:500],
        },
    )
    return policy


def _locked(policy_id: int) -> Policy:
    try:
        return Policy.objects.select_for_update().get(pk=policy_id)
    except (Policy.DoesNotExist, ValueError, TypeError):
        raise PolicyNotFound(f"no policy {policy_id}") from None


@transaction.atomic
def policy_version_create(
    *, policy_id: int, content: Any, user: User | AnonymousUser | None, reason: str = ""
) -> PolicyVersion:
    """A new version of a policy, which takes effect for requests opened from now on (open
    requests keep the version that decided them). Raises PolicyForbidden (403),
    PolicyNotFound (404), PolicyInvalid (400)."""
    author = _writer(user)
    policy = _locked(policy_id)
    cleaned = policy_content_validate(content)
    previous = policy.current
    version = _version_add(policy, cleaned, user=author, reason=reason)
    before = version_content(previous) if previous else {}
    after = version_content(version)
    audit_record(
        actor=Actor.for_user(user),
        verb="policy.versioned",
        target_type="policy",
        target_id=policy.pk,
        data={
            "name": policy.name,
            "version": version.version,
            "previous_version": previous.version if previous else None,
            "diff": {k: [before.get(k), after[k]] for k in after if before.get(k) != after[k]},
            "reason": reason[:500],
        },
    )
    return version


@transaction.atomic
def policy_update(
    *,
    policy_id: int,
    user: User | AnonymousUser | None,
    enabled: bool | None = None,
    shadow: bool | None = None,
    order: int | None = None,
    description: str | None = None,
) -> Policy:
    """Enable or disable a policy, switch it in or out of shadow mode, change its precedence
    or description (its rules change only through a new version). Raises PolicyForbidden
    (403), PolicyNotFound (404), PolicyInvalid (400)."""
    _writer(user)
    policy = _locked(policy_id)
    errors: dict[str, str] = {}
    _flags(name=None, description=description, order=order, errors=errors)
    if errors:
        raise PolicyInvalid(
            "the policy is not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors
        )
    wanted = {"enabled": enabled, "shadow": shadow, "order": order, "description": description}
    changes = {k: [getattr(policy, k), v] for k, v in wanted.items() if v is not None and getattr(policy, k) != v}
    if not changes:
        return policy
    for key, (_, value) in changes.items():
        setattr(policy, key, value)
    policy.save(update_fields=[*changes, "updated_at"])
    verb = "policy.changed"
    if set(changes) == {"enabled"}:
        verb = "policy.enabled" if policy.enabled else "policy.disabled"
    audit_record(
        actor=Actor.for_user(user),
        verb=verb,
        target_type="policy",
        target_id=policy.pk,
        data={"name": policy.name, "changes": changes},
    )
    return policy


# ------------------------------------------------------------------------------ deciding
@dataclass(frozen=True)
class Rule:
    """A policy in force: its current version, as evaluation reads it."""

    policy_id: int
    name: str
    shadow: bool
    version_id: int
    version: int
    conditions: dict[str, Any]
    gate: str
    approver_role: str
    quorum: int

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "version": self.version,
            "policy_version_id": self.version_id,
            "gate": self.gate,
            "approver_role": self.approver_role,
            "quorum": self.quorum,
        }


def rules_in_force() -> list[Rule]:
    """Enabled policies with a version, by precedence: one query."""
    rows = (
        PolicyVersion.objects.filter(policy__enabled=True, policy__current_id=F("pk"))
        .order_by("policy__order", "policy_id")
        .values_list(
            "policy_id",
            "policy__name",
            "policy__shadow",
            "pk",
            "version",
            "conditions",
            "gate",
            "approver_role",
            "quorum",
        )
    )
    return [Rule(*row) for row in rows]


def _threshold_holds(threshold: dict[str, Any], arguments: dict[str, Any]) -> bool:
    value = arguments.get(threshold["argument"])
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False  # a missing or non-numeric argument meets no threshold
    checks = {
        "gt": lambda bound: value > bound,
        "gte": lambda bound: value >= bound,
        "lt": lambda bound: value < bound,
        "lte": lambda bound: value <= bound,
        "eq": lambda bound: value == bound,
    }
    return all(checks[op](bound) for op, bound in threshold.items() if op in checks)


def rule_matches(rule: Rule, *, agent: str, tool: str, level: int, arguments: dict[str, Any], tier: str) -> bool:
    """Every condition holds (an empty list matches anything)."""
    cond = rule.conditions
    return (
        (not cond.get("agents") or agent in cond["agents"])
        and (not cond.get("tools") or tool in cond["tools"])
        and (not cond.get("tiers") or tier in cond["tiers"])
        and cond.get("privilege_min", 1) <= level <= cond.get("privilege_max", PrivilegeLevel.SUPER_ADMIN)
        and all(_threshold_holds(t, arguments) for t in cond.get("arguments", []))
    )


def stronger_role(*roles: str) -> str:
    """The role that may decide for all of ``roles`` (admin over reviewer)."""
    known = [role for role in roles if role]
    if any(role not in APPROVER_ROLES for role in known):
        return Role.ADMIN.value
    return max(known, key=APPROVER_ROLES.index) if known else Role.REVIEWER.value


def rules_from_snapshot(rows: list[list[Any]]) -> list[Rule]:
    """The rules ``vigil_gate_rules()`` (migration hitl 0006) answered in a step's snapshot read:
    the same rows as ``rules_in_force``, in the same order."""
    return [Rule(*row) for row in rows]


def _tier() -> str:
    """The tenant's tier. A worker's connection knows only the schema (django-tenants' stand-in
    tenant has no tier), so the tier is read then, and only when a rule names tiers."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.schema_name == connection.schema_name:
        return str(tenant.tier)
    return str(Tenant.objects.filter(schema_name=connection.schema_name).values_list("tier", flat=True).first() or "")


def gate_decide(
    *, agent: Agent, tool: ToolSpec, arguments: dict[str, Any], verdict: Verdict, rules: Any = None
) -> Gate:
    """The gate of one tool call the built-in rules did not deny (agents.hooks' ``gate``), from
    the rules the step's snapshot read when it gives them."""
    builtin = verdict.outcome == NEEDS_APPROVAL
    in_force = rules_from_snapshot(rules) if rules is not None else rules_in_force()
    tier = _tier() if any(rule.conditions.get("tiers") for rule in in_force) else ""
    live: Rule | None = None
    shadows: list[dict[str, Any]] = []
    for rule in in_force:
        if rule.shadow and not rule_matches(
            rule, agent=agent.name, tool=tool.name, level=tool.level, arguments=arguments, tier=tier
        ):
            continue
        if rule.shadow:
            shadows.append(rule.summary())
        elif live is None and rule_matches(
            rule, agent=agent.name, tool=tool.name, level=tool.level, arguments=arguments, tier=tier
        ):
            live = rule
    audit: dict[str, Any] = {}
    if live is None:
        needs, role, reason = builtin, verdict.required_role, verdict.reason
    else:
        audit["policy"] = live.summary()
        if live.gate == PolicyGate.NONE and tool.level <= GATE_NONE_MAX_LEVEL:
            needs, role, reason = False, "", f"policy {live.name} v{live.version}: no approval needed"
        else:
            needs = True
            role = stronger_role(verdict.required_role if builtin else "", live.approver_role)
            reason = f"policy {live.name} v{live.version}: needs {live.quorum} {role} approval(s)"
    for shadow in shadows:
        shadow["would_block"] = shadow["gate"] == PolicyGate.APPROVAL and not needs
    if shadows:
        audit["shadow"] = shadows
    return Gate(
        needs_approval=needs,
        required_role=role,
        reason=reason,
        policy_version_id=live.version_id if live is not None and needs else None,
        audit=audit,
    )


def ladder_of(version: PolicyVersion) -> Ladder:
    """The SLA ladder a policy version sets for the requests it decides."""
    steps = version.ladder.get("steps", [])
    return Ladder(
        reminder_share=float(version.ladder.get("reminder_share", DEFAULT_LADDER.reminder_share)),
        escalations=len(steps),
        terminal=TerminalAction(version.terminal),
        sla_minutes={**SLA_MINUTES, **{PRIORITY_BY_NAME[k]: v for k, v in version.sla_minutes.items()}},
        tiers=(version.approver_role, *(step["role"] for step in steps)),
        raises=tuple(bool(step.get("raise_priority", True)) for step in steps),
    )
