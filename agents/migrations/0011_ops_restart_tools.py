"""Ops agents created before a restart's approval followed its risk lack the risk-graded restart
tools (``restart_service.low`` and ``.medium``, agents.blueprints.ops), which an ops agent
created today is granted: their restarts of low or medium risk were denied and escalated. Grant
them as ``agent_create`` would have, to the ops agents that may restart a service at all (those
granted ``restart_service``: an admin who took that away did not want restarts, and the low-risk
variant runs without a reviewer), and audit each grant as a change of the agent's tools.

The tools are declared like ``agents.blueprints.ops`` declares them: copies of the stored
``restart_service`` with their own level and description (``tools_sync`` brings every tool in
line with the code after migrating). Idempotent: an agent that has both is left alone.
"""

from typing import Any

from django.db import migrations

# As agents.blueprints.ops declares them: name, privilege level, description.
RESTART_VARIANTS = (
    ("restart_service.low", 2, "Restart a production service (low risk)."),
    ("restart_service.medium", 3, "Restart a production service (medium risk)."),
)


def ops_restart_tools_grant(apps: Any, schema_editor: Any) -> None:
    from governance.actors import Actor
    from governance.services import audit_record

    tool = apps.get_model("agents", "Tool")
    agent = apps.get_model("agents", "Agent")
    restart = tool.objects.filter(name="restart_service").first()
    if restart is None:  # a schema without tools yet (a new one): no agent may restart
        return
    variants = []
    for name, level, description in RESTART_VARIANTS:
        variant, _ = tool.objects.get_or_create(
            name=name,
            defaults={
                "privilege_level": level,
                "description": description,
                "args_schema": restart.args_schema,
                "has_side_effect": restart.has_side_effect,
            },
        )
        variants.append(variant)
    for ops in agent.objects.filter(blueprint="ops", tools=restart).order_by("pk"):
        before = sorted(ops.tools.values_list("name", flat=True))
        missing = [variant for variant in variants if variant.name not in before]
        if not missing:
            continue
        ops.tools.add(*missing)
        audit_record(
            actor=Actor.system("migration"),
            verb="agent.tools_changed",
            target_type="agent",
            target_id=ops.pk,
            data={
                "from": before,
                "to": sorted([*before, *(variant.name for variant in missing)]),
                "reason": "ops agents restart by risk (agents migration 0011)",
            },
        )


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0010_gate_rules_function"),
        ("governance", "0003_audit_append_function"),
    ]

    operations = [migrations.RunPython(ops_restart_tools_grant, migrations.RunPython.noop)]
