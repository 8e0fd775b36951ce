from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("hitl", "0004_policies")]

    operations: list[migrations.operations.base.Operation] = []
