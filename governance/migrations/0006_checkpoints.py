from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("governance", "0005_api_tokens")]

    operations: list[migrations.operations.base.Operation] = []
