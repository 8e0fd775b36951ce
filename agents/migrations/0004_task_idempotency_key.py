"""Tasks keep the Idempotency-Key of the submit that created them: unique while set (a
partial index, so tasks submitted without a key cost no index entry), cleared by the next
submit that finds it expired."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_model_settings_connection"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="idempotency_key",
            field=models.CharField(blank=True, editable=False, max_length=200, null=True),
        ),
        migrations.AddConstraint(
            model_name="task",
            constraint=models.UniqueConstraint(
                condition=models.Q(("idempotency_key__isnull", False)),
                fields=("idempotency_key",),
                name="task_idempotency_key_unique",
            ),
        ),
    ]
