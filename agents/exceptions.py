from config.errors import VigilError


class IllegalTransition(VigilError):
    code = "illegal_transition"
    status = 409


class AgentNotFound(VigilError):
    code = "agent_not_found"
    status = 404


class TaskNotFound(VigilError):
    code = "task_not_found"
    status = 404


class InvalidAgentConfig(VigilError):
    code = "invalid_config"
    status = 400


class AgentUnavailable(VigilError):
    code = "agent_unavailable"
    status = 409


class ToolError(VigilError):
    """A tool refused its arguments or failed; the engine retries, then escalates."""

    code = "tool_error"
    status = 422


class EffectConflict(VigilError):
    """An idempotency key was reused with different arguments: never run the effect."""

    code = "effect_conflict"
    status = 409


class LLMError(VigilError):
    code = "llm_error"
    status = 502


class IdempotencyKeyReused(VigilError):
    """A submit reused an Idempotency-Key of the last 24 hours with a different request."""

    code = "idempotency_key_reused"
    status = 422


class TaskBusy(VigilError):
    """The task kept stopping at new gates while a change waited for it: try again."""

    code = "task_busy"
    status = 409
