from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("governance", "0004_audit_app_role")]

    operations: list[migrations.operations.base.Operation] = []
