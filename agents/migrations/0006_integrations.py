from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("agents", "0005_agent_object_permissions")]

    operations: list[migrations.operations.base.Operation] = []
