"""Who may call what: every URL pattern of a tenant's domain (the API, the admin and its custom
views, the other pages) and every admin action has an entry below, for each role, anonymous,
a role-less user and beta's bob on acme's host. A new endpoint without an entry fails
``test_every_url_pattern_and_admin_action_has_a_matrix_entry``.

The objects acted on belong to another user (olga, an agent manager who created the agent and
requested the task), so that no refusal below comes from owning them; the owner's own rules
are in tests/agents/test_api_approvals.py.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from agents.models import Agent, OutboxMessage, Task, TaskEvent
from agents.services import agent_create, task_submit
from config.connection import connection
from governance.models import AuditEvent
from governance.roles import user_roles_set
from hitl.models import ApprovalRequest, ReviewerProfile
from knowledge.models import Collection, Document
from tenants.models import Tenant
from tests.agents.api_support import task_drive, token_for
from tests.conftest import BILLING_TICKET, BOB, PASSWORD, REFUND_TICKET

ROLES = ("admin", "agent_manager", "reviewer", "viewer")
ALL = frozenset(ROLES)
MANAGERS = frozenset({"admin", "agent_manager"})
REVIEWERS = frozenset({"admin", "reviewer"})
ADMINS = frozenset({"admin"})
NOBODY: frozenset[str] = frozenset()
PUBLIC = "public"  # anyone, signed in or not
SIGNED_IN = "signed in"  # any user of the tenant, with or without a role
Allowed = frozenset[str] | str

# (URL name, method) -> who may.
API: dict[tuple[str, str], Allowed] = {
    ("api-root", "get"): SIGNED_IN,
    ("api-token", "post"): PUBLIC,
    ("schema", "get"): PUBLIC,
    ("api-docs", "get"): PUBLIC,
    ("blueprint-list", "get"): ALL,
    ("tool-list", "get"): ALL,
    ("tool-detail", "get"): ALL,
    ("agent-list", "get"): ALL,
    ("agent-list", "post"): MANAGERS,
    ("agent-detail", "get"): ALL,
    ("agent-detail", "patch"): MANAGERS,
    ("agent-versions", "get"): ALL,
    ("agent-rollback", "post"): MANAGERS,
    ("agent-tools", "put"): MANAGERS,
    ("agent-pause", "post"): MANAGERS,
    ("agent-resume", "post"): MANAGERS,
    ("agent-execute", "post"): MANAGERS,
    ("task-list", "get"): ALL,
    ("task-detail", "get"): ALL,
    ("task-events", "get"): ALL,
    ("task-cancel", "post"): MANAGERS,
    ("task-retry", "post"): MANAGERS,
    ("task-escalate", "post"): REVIEWERS,
    ("task-override", "post"): REVIEWERS,
    ("event-list", "get"): ALL,
    ("event-detail", "get"): ALL,
    ("approval-list", "get"): ALL,
    ("approval-pending", "get"): ALL,
    ("approval-detail", "get"): ALL,
    ("approval-approve", "post"): REVIEWERS,
    ("approval-reject", "post"): REVIEWERS,
    ("approval-queue", "get"): ALL,
    ("approval-respond", "post"): REVIEWERS,
    ("approval-claim", "post"): REVIEWERS,
    ("approval-release", "post"): REVIEWERS,
    ("approval-reassign", "post"): ADMINS,
    ("live-ticket", "post"): ALL,
    ("governance-dashboard", "get"): ALL,
    ("knowledge-collection-list", "get"): ALL,
    ("knowledge-collection-list", "post"): MANAGERS,
    ("knowledge-collection-detail", "get"): ALL,
    ("knowledge-document-list", "get"): ALL,
    ("knowledge-document-list", "post"): MANAGERS,
    ("knowledge-document-detail", "get"): ALL,
    ("knowledge-document-detail", "delete"): MANAGERS,
    ("knowledge-search", "post"): ALL,
}

KNOWLEDGE = ("collection", "document")
# (admin URL name, method) -> who may. A refused role gets 403 (404 for an app's index);
# anyone without a role is sent to the login page.
ADMIN: dict[tuple[str, str], Allowed] = {
    ("login", "get"): PUBLIC,
    ("index", "get"): ALL,
    ("password_change", "get"): ALL,
    ("password_change_done", "get"): ALL,
    ("jsi18n", "get"): ALL,
    ("autocomplete", "get"): NOBODY,  # no admin uses autocomplete fields
    ("view_on_site", "get"): NOBODY,  # no model has a page outside the admin
    ("logout", "post"): PUBLIC,
    **{
        (f"auth_user_{view}", "get"): ADMINS
        for view in ("changelist", "add", "change", "history", "delete", "password_change")
    },
    **{(f"auth_group_{view}", "get"): ADMINS for view in ("changelist", "change", "history")},
    **{(f"auth_group_{view}", "get"): NOBODY for view in ("add", "delete")},
    **{(f"governance_auditevent_{view}", "get"): ALL for view in ("changelist", "change", "history")},
    **{(f"governance_auditevent_{view}", "get"): NOBODY for view in ("add", "delete")},
    **{(f"agents_agent_{view}", "get"): ALL for view in ("changelist", "change", "history", "simple_history")},
    ("agents_agent_add", "get"): MANAGERS,
    ("agents_agent_delete", "get"): NOBODY,
    ("agents_agent_run", "get"): MANAGERS,
    ("agents_agent_run", "post"): MANAGERS,
    ("agents_agent_rollback", "get"): MANAGERS,
    ("agents_agent_rollback", "post"): MANAGERS,
    ("agents_agent_simple_history", "post"): NOBODY,  # reverting would bypass the service: roll back instead
    **{(f"agents_task_{view}", "get"): ALL for view in ("changelist", "change", "history")},
    **{(f"agents_task_{view}", "get"): NOBODY for view in ("add", "delete")},
    **{(f"agents_outboxmessage_{view}", "get"): ALL for view in ("changelist", "change", "history")},
    **{(f"agents_outboxmessage_{view}", "get"): NOBODY for view in ("add", "delete")},
    **{(f"hitl_approvalrequest_{view}", "get"): ALL for view in ("changelist", "change", "history")},
    **{(f"hitl_approvalrequest_{view}", "get"): NOBODY for view in ("add", "delete")},
    ("hitl_approvalrequest_decide", "get"): REVIEWERS,
    ("hitl_approvalrequest_decide", "post"): REVIEWERS,
    ("hitl_approvalrequest_queue", "get"): ALL,
    ("hitl_approvalrequest_team", "get"): ALL,
    **{(f"hitl_reviewerprofile_{view}", "get"): ALL for view in ("changelist", "change", "history")},
    **{(f"hitl_reviewerprofile_{view}", "get"): ADMINS for view in ("add", "delete")},
    **{
        (f"knowledge_{model}_{view}", "get"): ALL for model in KNOWLEDGE for view in ("changelist", "change", "history")
    },
    ("knowledge_collection_add", "get"): NOBODY,
    ("knowledge_document_add", "get"): MANAGERS,  # the upload form
    **{(f"knowledge_{model}_delete", "get"): NOBODY for model in KNOWLEDGE},
}
APP_INDEX: dict[str, Allowed] = {"auth": ADMINS, "governance": ALL, "agents": ALL, "hitl": ALL, "knowledge": ALL}
# Admin actions by model: action name -> who is offered it.
ACTIONS: dict[str, dict[str, Allowed]] = {
    "auth.user": {"delete_selected": ADMINS},
    "auth.group": {"delete_selected": NOBODY},
    "governance.auditevent": {"delete_selected": NOBODY},
    "agents.agent": {"delete_selected": NOBODY, "pause_selected": MANAGERS, "resume_selected": MANAGERS},
    "agents.task": {"delete_selected": NOBODY, "cancel_selected": MANAGERS, "retry_selected": MANAGERS},
    "agents.outboxmessage": {"delete_selected": NOBODY, "replay_selected": ADMINS},
    "hitl.approvalrequest": {"delete_selected": NOBODY, "escalate_selected": REVIEWERS},
    "hitl.reviewerprofile": {"delete_selected": ADMINS},
    "knowledge.collection": {"delete_selected": NOBODY},
    "knowledge.document": {"delete_selected": NOBODY},
}
# Pages of the tenant's domain outside the API and the admin.
PAGES: dict[str, Allowed] = {"invitation_accept": PUBLIC, "invitation_done": PUBLIC}

# Each area may keep its own entries in tests/governance/matrix_<area>.py: a module with any of
# API, ADMIN, APP_INDEX, ACTIONS, PAGES (merged into the tables above), API_URLS (URL name ->
# function of the World giving the URL), API_BODIES ((name, method) -> function of the World and
# the actor giving the JSON body), ADMIN_URLS (admin URL name -> function of the World giving
# the URL), ADMIN_BODIES (admin URL name -> function of the World giving the form data).
API_URLS: dict[str, Callable[[World], str]] = {}
API_BODIES: dict[tuple[str, str], Callable[[World, str], dict[str, Any]]] = {}
ADMIN_URLS: dict[str, Callable[[World], str]] = {}
ADMIN_BODIES: dict[str, Callable[[World], dict[str, Any]]] = {}


def _load_areas() -> None:
    for module_info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if not module_info.name.startswith("matrix_"):
            continue
        area = importlib.import_module(f"tests.governance.{module_info.name}")
        for table in (
            "API",
            "ADMIN",
            "APP_INDEX",
            "ACTIONS",
            "PAGES",
            "API_URLS",
            "API_BODIES",
            "ADMIN_URLS",
            "ADMIN_BODIES",
        ):
            entries = getattr(area, table, {})
            clash = set(entries) & set(globals()[table])
            assert not clash, f"{module_info.name}.{table} repeats {sorted(clash)}"
            globals()[table].update(entries)


_load_areas()

ACTORS = (*ROLES, "no role", "anonymous", "beta's bob")
USERNAMES = {
    "admin": "alice@acme.example",
    "agent_manager": "max@acme.example",
    "reviewer": "rita@acme.example",
    "viewer": "vera@acme.example",
    "no role": "nora@acme.example",
}


def _patterns(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
        else:
            yield namespace, prefix + str(pattern.pattern), pattern


def _methods(pattern: URLPattern) -> set[str]:
    actions = getattr(pattern.callback, "actions", None)
    if actions:
        return set(actions) - {"head"}  # DRF answers HEAD as GET
    view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    if view is None:
        return set()
    return {m for m in view.http_method_names if m not in ("options", "head", "trace") and hasattr(view, m)}


def _allowed(rule: Allowed, actor: str) -> bool:
    if rule == PUBLIC:
        return True
    if rule == SIGNED_IN:
        return actor in (*ROLES, "no role")
    return actor in rule


# ---------------------------------------------------------------------------- the cast
@dataclass
class World:
    """acme's objects, all made by olga."""

    agent: Agent
    task: Task
    approval: ApprovalRequest
    event: TaskEvent
    outbox: OutboxMessage
    olga: User
    kb_document: int = 0  # a knowledge document's id


@pytest.fixture
def world(acme: Tenant) -> World:
    connection.set_tenant(acme)
    for role in ("agent_manager", "viewer"):
        user = User.objects.create_user(USERNAMES[role], USERNAMES[role], PASSWORD)
        user_roles_set(user=user, roles=[role], actor=None)
    User.objects.create_user(USERNAMES["no role"], USERNAMES["no role"], PASSWORD)
    olga = User.objects.create_user("olga@acme.example", "olga@acme.example", PASSWORD)
    user_roles_set(user=olga, roles=["agent_manager"], actor=None)
    agent = agent_create(name="matrix-refunds", blueprint="resolution", privilege_ceiling=3, user=olga)
    task = task_drive(task_submit(agent_id=agent.pk, input=REFUND_TICKET, user=olga), {"awaiting_approval"})
    triage = agent_create(name="matrix-triage", blueprint="triage", user=olga)
    replied = task_drive(task_submit(agent_id=triage.pk, input=BILLING_TICKET, user=olga), {"verified", "escalated"})
    event = TaskEvent.objects.filter(task=task).first()
    assert event is not None
    matrix_kb = Collection.objects.create(name="matrix-kb")
    kb_document = Document.objects.create(
        collection=matrix_kb, title="FAQ", content_type="text", content_hash="0" * 64, text="-"
    )
    return World(
        agent=agent,
        task=task,
        approval=ApprovalRequest.objects.get(task=task),
        event=event,
        olga=olga,
        outbox=OutboxMessage.objects.get(effect__task=replied),
        kb_document=kb_document.pk,
    )


def _client(acme: Tenant, actor: str, *, api: bool) -> Client:
    client = Client(HTTP_HOST="acme.localhost")
    if actor in USERNAMES:
        connection.set_tenant(acme)
        client.force_login(User.objects.get(username=USERNAMES[actor]))
    elif actor == "beta's bob":
        beta = Client(HTTP_HOST="beta.localhost")
        connection.set_tenant(Tenant.objects.get(schema_name="beta"))
        if api:
            return Client(HTTP_HOST="acme.localhost", HTTP_AUTHORIZATION=f"Token {token_for(beta, BOB)}")
        assert beta.login(username=BOB, password=PASSWORD)
        client.cookies = beta.cookies  # beta's session cookie, sent to acme's host
    connection.set_schema_to_public()
    return client


# ------------------------------------------------------------------------- the API
def _api_request(world: World, name: str, method: str, actor: str) -> tuple[str, dict[str, Any]]:
    kwargs_by_prefix: dict[str, dict[str, Any]] = {
        "agent": {"pk": world.agent.pk},
        "task": {"pk": world.task.pk},
        "event": {"pk": world.event.pk},
        "approval": {"pk": world.approval.pk},
        "tool": {"name": "send_reply"},
        "knowledge-collection": {"name": "matrix-kb"},
        "knowledge-document": {"pk": world.kb_document},
    }
    if name in API_URLS:
        url = API_URLS[name](world)
    elif name.endswith(("-list", "-pending", "-queue")) or name in (
        "api-root",
        "api-token",
        "schema",
        "api-docs",
        "blueprint-list",
        "live-ticket",
        "governance-dashboard",
        "knowledge-search",
    ):
        url = reverse(name)
    else:
        prefix = name.rsplit("-", 1)[0] if name.startswith("knowledge-") else name.split("-")[0]
        url = reverse(name, kwargs=kwargs_by_prefix[prefix])
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("agent-list", "post"): {
            "name": f"made-by-{actor.replace(' ', '-').replace(chr(39), '')}",
            "blueprint": "triage",
        },
        ("agent-detail", "patch"): {"description": "changed"},
        ("agent-rollback", "post"): {"version": 1},
        ("agent-tools", "put"): {"tools": ["send_reply", "escalate_to_human"]},
        ("agent-execute", "post"): {"input": REFUND_TICKET},
        ("task-override", "post"): {"output": {"status": "resolved"}},
        ("approval-approve", "post"): {"action_hash": world.approval.action_hash},
        ("approval-respond", "post"): {"verdict": "reject", "reason": "matrix"},
        ("approval-reassign", "post"): {"user": USERNAMES["reviewer"]},
        # Right credentials (anonymous signs in as olga): wrong ones are a 401 of their own.
        ("api-token", "post"): {"username": USERNAMES.get(actor, "olga@acme.example"), "password": PASSWORD},
    }
    if (name, method) in API_BODIES:
        return url, API_BODIES[(name, method)](world, actor)
    return url, bodies.get((name, method), {})


def _order(entry: tuple[str, str]) -> tuple[bool, int, str]:
    # Reads first; then decisions before the task and agent changes that would close the request.
    name, method = entry
    group = next(i for i, prefix in enumerate(("approval", "task", "agent", "")) if name.startswith(prefix))
    return method != "get", group, name


@pytest.mark.parametrize("actor", ACTORS)
def test_each_api_endpoint_answers_each_actor_as_the_matrix_says(acme: Tenant, world: World, actor: str) -> None:
    client = _client(acme, actor, api=True)
    wrong = []
    for name, method in sorted(API, key=_order):
        url, body = _api_request(world, name, method, actor)
        if method == "get":
            response = client.get(url)
        else:
            response = getattr(client, method)(url, json.dumps(body), content_type="application/json")
        connection.set_schema_to_public()
        status = response.status_code
        rule = API[(name, method)]
        if actor == "beta's bob":
            ok = status == 401  # a credential of another tenant is refused, even where none is needed
        elif _allowed(rule, actor):
            ok = status < 500 and status not in (401, 403, 404, 405)
        elif actor == "anonymous":
            ok = status == 401
        else:
            ok = status == 403
        if not ok:
            wrong.append(f"{method.upper()} {url} ({name}): {status} {response.content[:200]!r}")
    assert wrong == []


# ----------------------------------------------------------------------- the admin
def _admin_url(world: World, name: str) -> str:
    objects = {
        "auth_user": world.olga.pk,
        "auth_group": Group.objects.get(name="viewer").pk,
        "governance_auditevent": AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first(),
        "agents_agent": world.agent.pk,
        "agents_task": world.task.pk,
        "agents_outboxmessage": world.outbox.pk,
        "hitl_approvalrequest": world.approval.pk,
        "hitl_reviewerprofile": ReviewerProfile.objects.get_or_create(user=world.olga)[0].pk,
        "knowledge_collection": Collection.objects.values_list("pk", flat=True).first(),
        "knowledge_document": world.kb_document,
    }
    special: dict[str, Callable[[], str]] = {
        "agents_agent_run": lambda: reverse("admin:agents_agent_run", args=[world.agent.pk]),
        "agents_agent_rollback": lambda: reverse("admin:agents_agent_rollback", args=[world.agent.pk, 1]),
        "agents_agent_simple_history": lambda: reverse(
            "admin:agents_agent_simple_history",
            args=[
                world.agent.pk,
                world.agent.history.order_by("history_id").values_list("history_id", flat=True).first(),
            ],
        ),
        "hitl_approvalrequest_decide": lambda: reverse("admin:hitl_approvalrequest_decide", args=[world.approval.pk]),
        "auth_user_password_change": lambda: reverse("admin:auth_user_password_change", args=[world.olga.pk]),
        "view_on_site": lambda: reverse("admin:view_on_site", args=[_content_type_id(), world.agent.pk]),
    }
    if name in special:
        return special[name]()
    if name in ADMIN_URLS:
        return ADMIN_URLS[name](world)
    model, _, view = name.rpartition("_")
    if model in objects and view in ("change", "history", "delete"):
        return reverse(f"admin:{name}", args=[objects[model]])
    return reverse(f"admin:{name}")


def _content_type_id() -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_by_natural_key("agents", "agent").pk


def _admin_body(world: World, name: str) -> dict[str, Any]:
    bodies: dict[str, dict[str, Any]] = {
        "agents_agent_run": {"input": json.dumps(BILLING_TICKET), "priority": 2},
        "hitl_approvalrequest_decide": {"verdict": "approve", "action_hash": world.approval.action_hash},
        "agents_agent_simple_history": {"name": world.agent.name},
    }
    if name in ADMIN_BODIES:
        return ADMIN_BODIES[name](world)
    return bodies.get(name, {})


def _admin_order(entry: tuple[str, str]) -> tuple[bool, bool, bool, str]:
    name, method = entry
    return name == "logout", method != "get", name != "hitl_approvalrequest_decide", name


@pytest.mark.parametrize("actor", ACTORS)
def test_each_admin_page_answers_each_actor_as_the_matrix_says(acme: Tenant, world: World, actor: str) -> None:
    client = _client(acme, actor, api=False)
    requests = [(name, method, ADMIN[(name, method)], "") for name, method in ADMIN]
    requests += [("app_list", "get", rule, label) for label, rule in APP_INDEX.items()]
    wrong = []
    for name, method, rule, label in sorted(requests, key=lambda r: _admin_order((r[0], r[1]))):
        connection.set_tenant(acme)
        url = reverse("admin:app_list", args=[label]) if name == "app_list" else _admin_url(world, name)
        body = _admin_body(world, name) if method == "post" else None
        connection.set_schema_to_public()
        response = client.post(url, body or {}) if method == "post" else client.get(url)
        status, location = response.status_code, response.get("Location", "")
        staff = actor in ROLES
        if not staff:
            ok = status < 400 if rule == PUBLIC else (status == 302 and "/admin/login/" in location)
        elif _allowed(rule, actor):
            ok = status in (200, 302) and "/admin/login/" not in location
        else:
            ok = status == (404 if name in ("app_list", "view_on_site") else 403)
        if not ok:
            wrong.append(f"{method.upper()} {url} ({name}): {status} {location}")
    assert wrong == []


@pytest.mark.parametrize("actor", ROLES)
def test_each_admin_action_is_offered_to_each_role_as_the_matrix_says(acme: Tenant, world: World, actor: str) -> None:
    connection.set_tenant(acme)
    request = RequestFactory().get("/admin/")
    request.user = User.objects.get(username=USERNAMES[actor])
    offered = {
        model._meta.label_lower: set(model_admin.get_actions(request))
        for model, model_admin in admin.site._registry.items()
    }
    expected = {
        label: {action for action, rule in actions.items() if _allowed(rule, actor)}
        for label, actions in ACTIONS.items()
    }
    assert offered == expected


# ------------------------------------------------------------------- completeness
def test_every_url_pattern_and_admin_action_has_a_matrix_entry() -> None:
    api, admin_views, pages, unnamed = set(), set(), set(), []
    for namespace, route, pattern in _patterns(get_resolver("config.urls_tenant").url_patterns):
        if pattern.name is None:
            unnamed.append(route)
        elif namespace == "admin":
            admin_views.add(pattern.name)
        elif route.startswith("api/"):
            api |= {(pattern.name, method) for method in _methods(pattern)}
        else:
            pages.add(pattern.name)
    assert api == set(API)
    assert admin_views - {"app_list"} == {name for name, _ in ADMIN}
    assert pages == set(PAGES)
    # Unnamed patterns are the admin's redirects to a change page and its catch-all.
    assert all(
        route.startswith("admin/") and route.endswith(("<path:object_id>/", "(?P<url>.*)$")) for route in unnamed
    ), unnamed
    registered = {model._meta.label_lower: model_admin for model, model_admin in admin.site._registry.items()}
    assert set(APP_INDEX) == {label.split(".")[0] for label in registered}
    assert set(ACTIONS) == set(registered)
    for label, model_admin in registered.items():
        own = {a if isinstance(a, str) else a.__name__ for a in model_admin.actions or ()}
        defined = set(admin.site._actions) | own
        assert defined == set(ACTIONS[label]), label


@pytest.mark.parametrize("actor", ACTORS)
def test_the_pages_outside_the_api_and_the_admin_answer_everyone(acme: Tenant, world: World, actor: str) -> None:
    client = _client(acme, actor, api=False)
    assert client.get(reverse("invitation_done")).status_code == 200
    assert client.get(reverse("invitation_accept", args=["MQ", "not-a-token"])).status_code == 200
    for name, rule in PAGES.items():
        if name in ("invitation_accept", "invitation_done"):
            continue
        connection.set_tenant(acme)
        url = ADMIN_URLS[name](world) if name in ADMIN_URLS else reverse(name)
        connection.set_schema_to_public()
        status = client.get(url).status_code
        assert (status < 400) == _allowed(rule, actor), (name, status)
