import hashlib
from datetime import timedelta
from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

LEGACY_TABLE = "authtoken_token"


def legacy_tokens_hash(apps: Any, schema_editor: Any) -> None:
    """DRF's tokens were stored in plain text: keep them working as hashed tokens (by their
    first eight characters and the SHA-256 of the whole key) and delete the plain rows."""
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    api_token = apps.get_model("governance", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {LEGACY_TABLE}")
        rows = cursor.fetchall()
        now = timezone.now()
        api_token.objects.bulk_create(
            [
                api_token(
                    user_id=user_id,
                    name="API token (before hashing)",
                    prefix=key[:8],
                    digest=hashlib.sha256(key.encode()).hexdigest(),
                    created_at=created,
                    expires_at=now + timedelta(days=settings.VIGIL_API_TOKEN_DAYS),
                )
                for key, user_id, created in rows
            ]
        )
        cursor.execute(f"DELETE FROM {LEGACY_TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0004_audit_app_role"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("prefix", models.CharField(db_index=True, max_length=16)),
                ("digest", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "API token", "ordering": ["-created_at", "-pk"]},
        ),
        migrations.RunPython(legacy_tokens_hash, migrations.RunPython.noop),
    ]
