from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_usage")]

    operations: list[migrations.operations.base.Operation] = []
