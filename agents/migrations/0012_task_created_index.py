from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0011_ops_restart_tools"),
    ]

    operations = [
        migrations.AddIndex(model_name="task", index=models.Index(fields=["-created_at"], name="task_created")),
    ]
