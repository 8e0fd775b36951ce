from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("agents", "0007_usage")]

    operations: list[migrations.operations.base.Operation] = []
