from config.errors import VigilError


class ApprovalNotFound(VigilError):
    code = "approval_not_found"
    status = 404


class ApprovalAlreadyDecided(VigilError):
    code = "approval_already_decided"
    status = 409


class ApprovalMismatch(VigilError):
    """The action changed since it was proposed (or since the reviewer saw it)."""

    code = "approval_action_mismatch"
    status = 409


class ApprovalForbidden(VigilError):
    code = "approval_forbidden"
    status = 403


class ApprovalHashRequired(VigilError):
    """Approving names the action_hash the reviewer saw, so a decision binds to what was shown."""

    code = "approval_hash_required"
    status = 400


class ReviewerAtCapacity(VigilError):
    code = "reviewer_at_capacity"
    status = 409


class ApprovalReasonRequired(VigilError):
    """Rejecting (through respond) names a reason, which goes to the requester and the feedback record."""

    code = "approval_reason_required"
    status = 400


class ApprovalEditInvalid(VigilError):
    """The edited arguments fail the tool's argument schema."""

    code = "approval_edit_invalid"
    status = 422


class ApprovalAlreadyVoted(VigilError):
    """A request that needs several approvers counts each user once."""

    code = "approval_already_voted"
    status = 409


class ApprovalEditAfterVotes(VigilError):
    """Editing the action of a request that already holds approvals would make them approve
    something else: reject it instead, or edit before anyone approves."""

    code = "approval_edit_after_votes"
    status = 409


class AwaitingClarification(VigilError):
    """The request waits for the requester's answer (hitl.clarification): it is not claimed,
    released, reassigned or escalated until then (its SLA clock is stopped meanwhile)."""

    code = "approval_awaiting_clarification"
    status = 409
