"""Approval requests (F-HITL-1, 7, 8), end to end: opened when the engine stops a step at its gate
(through agents.hooks), decided here, closed with their task."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from agents.authorization import NEEDS_APPROVAL, Verdict
from agents.events import publish
from agents.exceptions import IllegalTransition
from agents.hooks import Gate
from agents.models import Agent, AgentConfigVersion, Task
from agents.schemas import schema_errors
from agents.services import task_resume
from agents.tools import TOOLS
from config.connection import connection
from governance import access
from governance.access import Capability, Refusal
from governance.actors import Actor
from governance.hashchain import canonical_json
from governance.services import audit_record
from hitl.assignment import assign_next, slot_free
from hitl.binding import action_hash
from hitl.exceptions import (
    ApprovalAlreadyDecided,
    ApprovalAlreadyVoted,
    ApprovalEditAfterVotes,
    ApprovalEditInvalid,
    ApprovalForbidden,
    ApprovalHashRequired,
    ApprovalMismatch,
    ApprovalNotFound,
    ApprovalReasonRequired,
)
from hitl.models import (
    OPEN_STATUSES,
    ApprovalEvent,
    ApprovalEventKind,
    ApprovalPriority,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalVote,
    PolicyVersion,
)
from hitl.notify import decision_publish
from hitl.policies import gate_decide, ladder_of, stronger_role
from hitl.sla import DEFAULT_LADDER

APPROVE, REJECT, EDIT = "approve", "reject", "edit"
_VERDICT_STATUS = {APPROVE: ApprovalStatus.APPROVED, REJECT: ApprovalStatus.REJECTED, EDIT: ApprovalStatus.EDITED}


def approval_refusal(*, approval: ApprovalRequest, user: User | AnonymousUser) -> Refusal | None:
    """Why ``user`` may not decide ``approval`` (None when they may): governance.access's
    rules, given this request's agent, its task's requester, the agent's owner (who created it:
    the author of its first configuration) and its latest config author."""
    task = approval.task
    owner_id, config_author_id = _authors(approval)
    return access.decide_refusal(
        user,
        required_role=approval.required_role,
        agent_id=task.agent_id,
        agent_name=task.agent.name,
        requester_id=task.created_by_id,
        config_author_id=config_author_id,
        owner_id=owner_id,
    )


def _authors_subquery(agent_ref: Any, *, latest: bool) -> Subquery:
    versions = AgentConfigVersion.objects.filter(agent_id=agent_ref).order_by("-version" if latest else "version")
    return Subquery(versions.values("author_id")[:1])


def agent_authors(*, agent_id: int) -> tuple[int | None, int | None]:
    """(the agent's owner, the author of its latest configuration): neither decides its approvals."""
    row = (
        Agent.objects.filter(pk=agent_id)
        .values_list(_authors_subquery(OuterRef("pk"), latest=False), _authors_subquery(OuterRef("pk"), latest=True))
        .first()
    )
    return (row[0], row[1]) if row is not None else (None, None)


# What one request object has read once and keeps for its life (one API call, one service
# call): the decision, its quorum count and the answer all ask the same questions.
_AUTHORS = "_vigil_agent_authors"
_VOTES = "_vigil_votes"


def _authors(approval: ApprovalRequest) -> tuple[int | None, int | None]:
    cached = approval.__dict__.get(_AUTHORS)
    if cached is None:
        cached = agent_authors(agent_id=approval.task.agent_id)
        approval.__dict__[_AUTHORS] = cached
    return cached


def _votes(approval: ApprovalRequest) -> list[ApprovalVote]:
    """The request's votes with their voters, oldest first. approval_decide reads them under
    the request's lock and adds the one it records; nothing else writes votes."""
    cached = approval.__dict__.get(_VOTES)
    if cached is None:
        cached = list(approval.votes.select_related("user"))
        approval.__dict__[_VOTES] = cached
    return cached


# The request's own fields (the API answers with them), and of its task, agent and assignee
# only what the rules and the answer use: a task's input and output can be large.
_LOCKED_FIELDS = (
    *(field.name for field in ApprovalRequest._meta.concrete_fields),
    "task__agent__name",
    "task__created_by",
    "assignee__username",
)


def _locked(approval_id: int) -> ApprovalRequest:
    """The request, locked, with its task, agent and assignee; the agent's authors and whether
    it holds any vote come in the same read (a request without votes, the usual case, needs no
    read of them). The lock is taken first, by a statement of its own: what the read returns
    is then as of after the lock (votes and changes a concurrent decider committed while this
    one waited), which a read that waits for its lock would not see in the other tables."""
    if not ApprovalRequest.objects.select_for_update().filter(pk=approval_id).order_by().values_list("pk", flat=True):
        raise ApprovalRequest.DoesNotExist
    request = (
        ApprovalRequest.objects.select_related("task__agent", "assignee")
        .only(*_LOCKED_FIELDS)
        .annotate(
            agent_owner_id=_authors_subquery(OuterRef("task__agent_id"), latest=False),
            agent_config_author_id=_authors_subquery(OuterRef("task__agent_id"), latest=True),
            has_votes=Exists(ApprovalVote.objects.filter(approval_id=OuterRef("pk"))),
        )
        .get(pk=approval_id)
    )
    found = request.__dict__
    found[_AUTHORS] = (found.pop("agent_owner_id"), found.pop("agent_config_author_id"))
    if not found.pop("has_votes"):
        found[_VOTES] = []
    return request


@transaction.atomic(durable=True)
def approval_decide(
    *,
    approval_id: int,
    user: User | AnonymousUser,
    verdict: str,
    note: str = "",
    seen_hash: str | None = None,
    arguments: dict[str, Any] | None = None,
    reason_required: bool = False,
) -> ApprovalRequest:
    """Approve, reject or edit an open request, once. The decider is the authenticated ``user``
    (assigned or not: the assignment routes work, the rules below decide who may decide).

    ``edit`` approves ``arguments`` instead of the proposed ones: they must pass the tool's
    argument schema, get their own action hash, and the task resumes with exactly them; the
    proposed action and its hash stay in ``original_arguments`` / ``original_hash`` and the
    audit event holds both hashes. ``reason_required``: rejecting needs a ``note``.

    Raises ApprovalNotFound (404), also for a request the user may not see; ApprovalForbidden
    (403) naming the rule (``extra.rule``: role, agent_scope, requester, config_author; see
    approval_refusal); ApprovalHashRequired (400) when approving or editing without
    ``seen_hash``; ApprovalReasonRequired (400); ApprovalEditInvalid (422);
    ApprovalAlreadyDecided (409) for a second or conflicting decision; ApprovalMismatch
    (409) when the stored action no longer matches its hash or the hash the reviewer saw.
    Approving resumes the task at exactly that action; the worker re-checks the hash and runs
    it under the request's idempotency key."""
    if verdict not in _VERDICT_STATUS:
        raise ValueError(f"verdict must be {APPROVE}, {REJECT} or {EDIT}")
    try:
        request = _locked(approval_id)
    except (ApprovalRequest.DoesNotExist, ValueError, TypeError):
        raise ApprovalNotFound(f"no approval request {approval_id}") from None
    if not access.user_may(user, Capability.VIEW, request):
        raise ApprovalNotFound(f"no approval request {approval_id}")
    refusal = approval_refusal(approval=request, user=user)
    if refusal is not None:
        raise ApprovalForbidden(refusal.detail, rule=refusal.rule, **refusal.extra)
    # Rejecting runs nothing, so it needs no hash; approving binds to the action as shown.
    if verdict != REJECT and not seen_hash:
        raise ApprovalHashRequired(
            "approving needs the action_hash of the action you reviewed", fields={"action_hash": "required to approve"}
        )
    if verdict == REJECT and reason_required and not note.strip():
        raise ApprovalReasonRequired("rejecting needs a reason", fields={"reason": "required to reject"})
    if request.status not in OPEN_STATUSES:
        raise ApprovalAlreadyDecided(
            f"approval request {request.pk} is already {request.status}", status=request.status
        )
    expected = action_hash(tool=request.tool, arguments=request.arguments, schema=connection.schema_name)
    # Rejecting runs nothing, so an altered request can still be rejected; approving cannot.
    if verdict != REJECT and expected != request.action_hash:
        raise ApprovalMismatch(f"the action of request {request.pk} was altered after it was proposed")
    if verdict != REJECT and seen_hash is not None and seen_hash != request.action_hash:
        raise ApprovalMismatch(
            "the action changed since you saw it; reload and decide again", action_hash=request.action_hash
        )
    # Quorum (F-HITL-10): every decision is a vote, one per user; approvals count while they
    # approve the action as it stands, and the request stays open until there are enough.
    voter = user if isinstance(user, User) else None
    votes = _votes(request)
    if voter is not None and any(vote.user_id == voter.pk for vote in votes):
        raise ApprovalAlreadyVoted(
            f"you already voted on approval request {request.pk}; nobody counts twice",
            approvals=_approvals(request),
            quorum=request.quorum,
        )
    if verdict == EDIT and any(vote.verdict in (APPROVE, EDIT) for vote in votes):
        raise ApprovalEditAfterVotes(
            f"approval request {request.pk} already holds approvals of the proposed action; reject it instead"
        )
    edit: dict[str, Any] = {}
    if verdict == EDIT:
        edit = _edit_apply(request, arguments)
    voted_at = timezone.now()
    votes.append(
        ApprovalVote.objects.create(
            approval=request,
            user=voter,
            verdict=verdict,
            action_hash=request.action_hash,
            reason=note[:1000],
            created_at=voted_at,
        )
    )
    if verdict != REJECT and _approvals(request) < request.quorum:
        return _vote_record(request, voter=voter, verdict=verdict, edit=edit, now=voted_at)
    decided = _VERDICT_STATUS[verdict]
    if decided == ApprovalStatus.APPROVED and request.original_hash:
        decided = ApprovalStatus.EDITED  # the last approval of a quorum that began with an edit
    slot_free(request)
    now = timezone.now()
    request.status = decided
    # Only an authenticated user gets past the access check above.
    request.decided_by = user if isinstance(user, User) else None
    request.decided_at = now
    request.decision_note = note[:1000]
    request.save(
        update_fields=[
            "status",
            "decided_by",
            "decided_at",
            "decision_note",
            "arguments",
            "action_hash",
            "original_arguments",
            "original_hash",
        ]
    )
    feedback = {
        "verdict": verdict,
        "reason": note[:1000],
        "seconds_to_decide": round((now - request.created_at).total_seconds(), 3),
        "assignee": request.assignee.get_username() if request.assignee else None,
        **({"edit_diff": edit} if edit else {}),
        **({"approvals": _approvals(request), "quorum": request.quorum} if request.quorum > 1 else {}),
    }
    ApprovalEvent.objects.create(
        approval=request, kind=str(decided), actor=request.decided_by, data=feedback, created_at=now
    )
    # Published before the task resumes: after commit, callbacks run in the order they were
    # registered, so the reviewers' screens hear of the decision before the task's message
    # goes to the workers. Nothing is sent if anything below rolls the decision back.
    decision_publish(approval=request, agent_id=request.task.agent_id)
    # The task's state and lease are the agents app's to move: it resumes the task at this
    # request's step (one statement), or refuses when the task no longer waits there. Its
    # transition is audited, which takes the tenant's audit lock until commit: the request's
    # own writes come first, so that the lock is held for as few statements as possible.
    try:
        task_resume(
            task_id=request.task_id, step_index=request.step_index, user=user, reason=f"approval {request.pk} {decided}"
        )
    except IllegalTransition as exc:
        raise ApprovalAlreadyDecided(
            f"task {request.task_id} is {exc.extra['state']}; request {request.pk} can no longer resume it",
            task_state=exc.extra["state"],
        ) from None
    audit_record(
        actor=Actor.for_user(user),
        verb=f"approval.{request.status}",
        target_type="approval",
        target_id=request.pk,
        data={
            "task_id": request.task_id,
            "tool": request.tool,
            "action_hash": request.action_hash,
            "note": note[:1000],
            **({"original_hash": request.original_hash} if request.original_hash else {}),
        },
    )
    return request


def _approvals(request: ApprovalRequest) -> int:
    """Approvals that count: those of the action as it stands (an edit rebinds the hash), by
    voters who may still decide it now (a voter who since became the agent's config author, or
    whose role no longer reaches the request's tier after an escalation, counts no more)."""
    return sum(
        1
        for vote in _votes(request)
        if vote.verdict in (APPROVE, EDIT)
        and vote.action_hash == request.action_hash
        and vote.user is not None
        and approval_refusal(approval=request, user=vote.user) is None
    )


def _vote_record(
    request: ApprovalRequest, *, voter: User | None, verdict: str, edit: dict[str, Any], now: datetime
) -> ApprovalRequest:
    """An approval short of the quorum: recorded in the history and the audit chain; the
    request stays open, and leaves the voter's queue for another eligible reviewer."""
    approvals = _approvals(request)
    fields = ["arguments", "action_hash", "original_arguments", "original_hash"] if edit else []
    if voter is not None and request.assignee_id == voter.pk:
        slot_free(request)
        request.assignee = None
        request.assigned_at = None
        if request.status != ApprovalStatus.CLARIFICATION:  # a question stays open, its SLA stopped
            request.status = ApprovalStatus.PENDING if request.escalation_level == 0 else ApprovalStatus.ESCALATED
        fields += ["assignee", "assigned_at", "status"]
    if fields:
        request.save(update_fields=fields)
    data = {
        "verdict": verdict,
        "approvals": approvals,
        "quorum": request.quorum,
        "action_hash": request.action_hash,
        **({"edit_diff": edit, "original_hash": request.original_hash} if edit else {}),
    }
    ApprovalEvent.objects.create(approval=request, kind=ApprovalEventKind.VOTED, actor=voter, data=data, created_at=now)
    audit_record(
        actor=Actor.for_user(voter) if voter is not None else Actor.system("approval"),
        verb="approval.voted",
        target_type="approval",
        target_id=request.pk,
        data={"task_id": request.task_id, "tool": request.tool, **data},
    )
    if request.assignee_id is None:
        assign_next(approval=request, now=now)  # never to someone who voted (hitl.assignment)
    return request


def quorum_progress(request: ApprovalRequest) -> dict[str, Any]:
    """How far a request is from its quorum (the approvals that count now), and who voted
    what (for the API and the admin)."""
    votes = [
        {
            "user": vote.user.get_username() if vote.user else None,
            "verdict": vote.verdict,
            "action_hash": vote.action_hash,
            "reason": vote.reason,
            "at": vote.created_at.isoformat(),
        }
        for vote in _votes(request)
    ]
    return {"required": request.quorum, "approvals": _approvals(request), "votes": votes}


def _edit_apply(request: ApprovalRequest, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """Replace the proposed arguments with the edited ones (validated against the tool's schema)
    and rebind the hash; returns the diff, by argument: [proposed, edited]."""
    if not isinstance(arguments, dict):
        raise ApprovalEditInvalid("editing needs the edited arguments", fields={"arguments": "required to edit"})
    spec = TOOLS.get(request.tool)
    if spec is None:
        raise ApprovalEditInvalid(f"unknown tool {request.tool!r}")
    errors = schema_errors(arguments, spec.args_schema)
    if errors:
        raise ApprovalEditInvalid(f"the edited arguments fail {request.tool}'s schema", fields=errors)
    diff = {
        key: [request.arguments.get(key), arguments.get(key)]
        for key in sorted(set(request.arguments) | set(arguments))
        if request.arguments.get(key) != arguments.get(key)
    }
    request.original_arguments, request.original_hash = request.arguments, request.action_hash
    request.arguments = arguments
    request.action_hash = action_hash(tool=request.tool, arguments=arguments, schema=connection.schema_name)
    return diff


def _sources(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sources the steps cite (a ``sources`` list in a step's result), each with the hash of
    its content."""
    found: list[dict[str, Any]] = []
    for step in steps:
        result = step.get("result")
        cited = result.get("sources") if isinstance(result, dict) else None
        for source in cited if isinstance(cited, list) else []:
            if isinstance(source, dict):
                content = source.get("content", source)
                digest = source.get("content_hash") or hashlib.sha256(canonical_json(content).encode()).hexdigest()
                found.append({"title": source.get("title", ""), "ref": source.get("ref", ""), "content_hash": digest})
    return found


def evidence_build(*, task: Task, tool: str, arguments: dict[str, Any], reasoning: str) -> dict[str, Any]:
    """What the reviewer sees, frozen when the request opens: the task's input, the proposed
    action, the agent's reasoning, its steps so far and the sources they cite."""
    steps: list[dict[str, Any]] = [
        dict(step)
        for step in task.steps.order_by("index").values(
            "index", "action", "arguments", "result", "reasoning", "decision"
        )
    ]
    return {
        "task": {"id": task.pk, "agent": task.agent.name, "input": task.input},
        "action": {"tool": tool, "arguments": arguments},
        "reasoning": reasoning,
        "steps": steps,
        "sources": _sources(steps),
    }


def approval_open(
    *,
    task: Task,
    step_index: int,
    tool: str,
    level: int,
    arguments: dict[str, Any],
    reasoning: str,
    required_role: str,
    actor: Actor,
    now: datetime | None = None,
    gate: Gate | None = None,
) -> ApprovalRequest:
    """Open the request for a step that needs a human's decision: the action stored verbatim
    with the hash that binds a decision to it, the evidence snapshot (its hash in the audit
    event), the priority of its task and the SLA deadline of that priority, then assignment
    to the least-loaded eligible reviewer when one has a free slot; an event for the
    reviewers' screens and the assignee's e-mail after commit. Runs inside the engine's step
    transaction, which has just moved the task to awaiting_approval (registered as
    agents.hooks' ``open``, see hitl.apps).

    ``gate``: the engine's answer from the approval policies (hitl.policies); without it
    (a caller other than the engine) the policies are asked here. The deciding policy version
    sets the deciding role (never below ``required_role``), the quorum, the priority, the SLA
    and ladder; the request records it, and what matching shadow policies would require."""
    moment = now or timezone.now()
    if gate is None:
        gate = _gate_for(task=task, tool=tool, arguments=arguments, required_role=required_role)
    version = PolicyVersion.objects.get(pk=gate.policy_version_id) if gate.policy_version_id else None
    ladder = ladder_of(version) if version is not None else DEFAULT_LADDER
    if version is not None:
        required_role = stronger_role(required_role, version.approver_role)
    priority = task.priority if task.priority in ApprovalPriority.values else ApprovalPriority.MEDIUM
    if version is not None and version.priority:
        priority = version.priority
    shadow = list(gate.audit.get("shadow", []))
    evidence = evidence_build(task=task, tool=tool, arguments=arguments, reasoning=reasoning)
    request = ApprovalRequest.objects.create(
        task=task,
        step_index=step_index,
        tool=tool,
        arguments=arguments,
        action_hash=action_hash(tool=tool, arguments=arguments, schema=connection.schema_name),
        privilege_level=level,
        reasoning=reasoning,
        required_role=required_role,
        priority=priority,
        due_at=ladder.due(priority=priority, start=moment),
        remind_at=ladder.remind(priority=priority, start=moment),
        policy_version=version,
        quorum=version.quorum if version is not None else 1,
        shadow=shadow,
        evidence=evidence,
        evidence_hash=hashlib.sha256(canonical_json(evidence).encode("utf-8")).hexdigest(),
    )
    ApprovalEvent.objects.create(
        approval=request,
        kind=ApprovalEventKind.OPENED,
        data={
            "evidence_hash": request.evidence_hash,
            **({"policy": gate.audit["policy"]} if gate.audit.get("policy") else {}),
        },
        created_at=moment,
    )
    if shadow:
        ApprovalEvent.objects.create(
            approval=request, kind=ApprovalEventKind.SHADOW, data={"policies": shadow}, created_at=moment
        )
    audit_record(
        actor=actor,
        verb="approval.requested",
        target_type="approval",
        target_id=request.pk,
        data={
            "task_id": task.pk,
            "tool": tool,
            "action_hash": request.action_hash,
            "required_role": required_role,
            "evidence_hash": request.evidence_hash,
            "priority": ApprovalPriority(priority).label,
            "due_at": request.due_at.isoformat() if request.due_at else None,
            "policy": gate.audit.get("policy"),
            "quorum": request.quorum,
            **({"shadow": shadow} if shadow else {}),
        },
    )
    publish("approval.requested", approval_id=request.pk, task_id=task.pk, tool=tool, required_role=required_role)
    assign_next(approval=request, now=moment)
    return request


def _gate_for(*, task: Task, tool: str, arguments: dict[str, Any], required_role: str) -> Gate:
    """The policies' answer for a step that is opened without the engine's: a policy that
    waives the gate is ignored here (the step is already waiting), the built-in role stands."""
    spec = TOOLS.get(tool)
    builtin = Gate(needs_approval=True, required_role=required_role, reason="")
    if spec is None:
        return builtin
    gate = gate_decide(
        agent=task.agent, tool=spec, arguments=arguments, verdict=Verdict(NEEDS_APPROVAL, "", required_role)
    )
    if gate.needs_approval:
        return gate
    return Gate(
        needs_approval=True, required_role=required_role, reason="", audit={"shadow": gate.audit.get("shadow", [])}
    )


def approvals_close(*, task_id: int) -> int:
    """Close the open requests of a task that was cancelled or escalated, inside the caller's
    transaction: nobody can decide them any more, and their assignees get their slots back.
    Returns how many."""
    closing = list(ApprovalRequest.objects.select_for_update().filter(task_id=task_id, status__in=OPEN_STATUSES))
    for request in closing:
        slot_free(request)
    return ApprovalRequest.objects.filter(pk__in=[r.pk for r in closing]).update(
        status=ApprovalStatus.CANCELLED, decided_at=timezone.now()
    )
