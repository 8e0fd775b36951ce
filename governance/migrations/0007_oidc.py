from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("governance", "0006_checkpoints")]

    operations: list[migrations.operations.base.Operation] = []
