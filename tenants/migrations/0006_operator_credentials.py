from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_usage")]

    operations = [
        migrations.AddField(
            model_name="llmconnection",
            name="api_key_encrypted",
            field=models.TextField(blank=True, db_default="", editable=False),
        ),
    ]
