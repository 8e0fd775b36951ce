from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("agents", "0006_integrations")]

    operations: list[migrations.operations.base.Operation] = []
