from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("hitl", "0003_queue")]

    operations: list[migrations.operations.base.Operation] = []
