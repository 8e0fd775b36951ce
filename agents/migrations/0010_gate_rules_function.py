"""``vigil_gate_rules()``: what the approval policies say, read by the step's snapshot statement
(agents.statements.SNAPSHOT) in the same round trip. Here it answers NULL (the built-in rules
decide); the app that owns approval policies replaces it (hitl migration 0006)."""

from django.db import migrations

NULL_RULES = (
    "CREATE OR REPLACE FUNCTION vigil_gate_rules() RETURNS jsonb LANGUAGE sql STABLE AS $$ SELECT NULL::jsonb $$"
)


class Migration(migrations.Migration):
    dependencies = [("agents", "0009_history")]

    operations = [migrations.RunSQL(NULL_RULES, "DROP FUNCTION IF EXISTS vigil_gate_rules()")]
