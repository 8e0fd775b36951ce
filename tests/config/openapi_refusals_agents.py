"""Operations of the agents API whose schema-valid requests may still be refused with 400 (the
schemathesis run in tests/config/test_openapi_schemathesis.py skips its positive-data check for
them): operation label → why the schema cannot say it. (A name already taken is a 409, which
that check accepts.)"""

REFUSALS: dict[str, str] = {
    "POST /api/v1/agents/": (
        "config is checked against the config schema of the blueprint the same body names, tools and "
        "model_settings.connection name rows of the tenant (tools, the operator's LLM connections)"
    ),
    "PATCH /api/v1/agents/{id}/": (
        "config is checked against the config schema of the agent's blueprint, and "
        "model_settings.connection names one of the operator's LLM connections"
    ),
    "POST /api/v1/agents/{id}/execute/": "input is checked against the input schema of the agent's blueprint",
    "POST /api/v1/agents/{id}/rollback/": "version names a version the agent may not have",
    "PUT /api/v1/agents/{id}/tools/": "tools name tool rows of the tenant",
    "POST /api/v1/event-sources/": ("agent names an agent of the tenant, which must be an ops agent"),
    "PATCH /api/v1/event-sources/{name}/": "agent names an agent of the tenant, which must be an ops agent",
    "POST /api/v1/integrations/credentials/": (
        "rules across fields: header_name for kind header only (and not a header the relay sets), a basic "
        "secret is 'user:password'"
    ),
    "PATCH /api/v1/integrations/credentials/{name}/": (
        "a basic credential's new secret is 'user:password' (the kind is the stored credential's)"
    ),
    "POST /api/v1/integrations/endpoints/": (
        "url must pass the operator's egress rules, credential names a credential of the tenant, a kind "
        "goes to one enabled endpoint only"
    ),
    "PATCH /api/v1/integrations/endpoints/{name}/": (
        "url must pass the operator's egress rules, credential names a credential of the tenant, and a "
        "kind goes to one enabled endpoint only"
    ),
    "GET /api/v1/usage/": "rules across the two dates: from is not after to, and the period is at most 366 days",
}
