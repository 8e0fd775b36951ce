"""Operations of the hitl API whose schema-valid requests may still be refused with 400 (the
schemathesis run in tests/config/test_openapi_schemathesis.py skips its positive-data check for
them): operation label → why the schema cannot say it."""

REFUSALS: dict[str, str] = {
    "POST /api/v1/hitl/{id}/respond/": (
        "what the body needs depends on the verdict and on the request: approve and edit name the "
        "action_hash, reject a reason (approval_hash_required, approval_reason_required), and edit's "
        "arguments are checked against the argument schema of the request's tool"
    ),
    "POST /api/v1/hitl/escalate/": (
        "target must be a tier of the request's ladder above its current role, and a request at the "
        "last tier of its ladder has nothing above it (escalation_invalid): both depend on the row"
    ),
    "POST /api/v1/hitl/policies/": (
        "rules across fields (conditions.privilege_min not above privilege_max; gate none and terminal "
        "auto_approve only with a low conditions.privilege_max) and a name already in use (policy_invalid)"
    ),
    "POST /api/v1/hitl/policies/{id}/versions/": (
        "rules across fields: conditions.privilege_min not above privilege_max; gate none and terminal "
        "auto_approve only with a low conditions.privilege_max (policy_invalid)"
    ),
}
