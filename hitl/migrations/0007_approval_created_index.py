from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("hitl", "0006_gate_rules_function"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="approvalrequest", index=models.Index(fields=["-created_at"], name="approval_created")
        ),
    ]
