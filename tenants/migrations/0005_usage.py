from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_llm_connection")]

    operations: list[migrations.operations.base.Operation] = []
