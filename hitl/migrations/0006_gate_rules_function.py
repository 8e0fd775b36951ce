"""``vigil_gate_rules()`` answers the approval policies in force, so that a tool step learns
them in its snapshot read (agents.statements.SNAPSHOT) instead of a query of its own: the rows
of hitl.policies.rules_in_force, in its order (tests/hitl/test_policies.py checks they agree)."""

from django.db import migrations

RULES = """
CREATE OR REPLACE FUNCTION vigil_gate_rules() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_array(
           v.policy_id, p.name, p.shadow, v.id, v.version, v.conditions, v.gate, v.approver_role, v.quorum
         ) ORDER BY p."order", v.policy_id), '[]'::jsonb)
    FROM hitl_policyversion v JOIN hitl_policy p ON p.current_id = v.id
   WHERE p.enabled
$$
"""
NULL_RULES = (
    "CREATE OR REPLACE FUNCTION vigil_gate_rules() RETURNS jsonb LANGUAGE sql STABLE AS $$ SELECT NULL::jsonb $$"
)


class Migration(migrations.Migration):
    dependencies = [("hitl", "0005_quorum_clarification"), ("agents", "0010_gate_rules_function")]

    operations = [migrations.RunSQL(RULES, NULL_RULES)]
