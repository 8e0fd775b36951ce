"""Agents name an operator's LLM connection and one of its models (tenants.LLMConnection),
never a URL or an environment variable. Only the help text changes: stored settings of the
old shape are not rewritten; the engine refuses them (a step fails with a message) until the
agent names a connection or the offline provider."""

from django.db import migrations, models

HELP = '{"provider": "offline"} or {"connection": "<an LLM connection>", "model": "<one of its models>"}'


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_task_indexes_for_hot_updates"),
    ]

    operations = [
        migrations.AlterField(
            model_name="agent",
            name="model_settings",
            field=models.JSONField(blank=True, default=dict, help_text=HELP),
        ),
        migrations.AlterField(
            model_name="historicalagent",
            name="model_settings",
            field=models.JSONField(blank=True, default=dict, help_text=HELP),
        ),
    ]
