from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("agents", "0006_integrations"), ("tenants", "0005_usage")]

    operations: list[migrations.operations.base.Operation] = [
        # The order queued tasks are admitted in (agents.limits); partial on the state, so a
        # lease update (attempt, ack_deadline) still changes no indexed column.
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("state", "queued")), fields=["-priority", "id"], name="task_queued_order"
            ),
        ),
        # The tenant's own usage rows, for its admin (agents.usage).
        migrations.CreateModel(
            name="TenantUsage",
            fields=[],
            options={
                "verbose_name": "usage",
                "verbose_name_plural": "usage",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("tenants.usageday",),
        ),
    ]
