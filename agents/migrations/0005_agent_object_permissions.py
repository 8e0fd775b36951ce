"""Object permissions that limit a user to some agents (manage_agent, review_agent; view_agent
is Django's own). Only model options change: the permission rows are created after migrate."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0004_task_idempotency_key"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="agent",
            options={
                "ordering": ["name"],
                "permissions": [
                    ("manage_agent", "Can manage and run this agent"),
                    ("review_agent", "Can review this agent's approval requests"),
                ],
            },
        ),
    ]
