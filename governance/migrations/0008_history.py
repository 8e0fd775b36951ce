from typing import Any

import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

ROLE_CODES = ("admin", "agent_manager", "reviewer", "viewer")


def role_assignments_record(apps: Any, schema_editor: Any) -> None:
    """The roles held before history was kept: one assignment each, and its first record."""
    user_groups = apps.get_model("auth", "User").groups.through
    assignment = apps.get_model("governance", "RoleAssignment")
    historical = apps.get_model("governance", "HistoricalRoleAssignment")
    now = timezone.now()
    held = user_groups.objects.filter(group__name__in=ROLE_CODES).values_list("user_id", "group__name")
    created = assignment.objects.bulk_create([assignment(user_id=user, role=role) for user, role in held])
    historical.objects.bulk_create(
        [
            historical(
                id=row.pk,
                user_id=row.user_id,
                role=row.role,
                history_date=now,
                history_type="+",
                history_change_reason="held before history was kept",
            )
            for row in created
        ]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0007_oidc"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="HistoricalRoleAssignment",
            fields=[
                ("id", models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name="ID")),
                ("role", models.CharField(max_length=20)),
                ("history_id", models.AutoField(primary_key=True, serialize=False)),
                ("history_date", models.DateTimeField(db_index=True)),
                ("history_change_reason", models.CharField(max_length=100, null=True)),
                (
                    "history_type",
                    models.CharField(choices=[("+", "Created"), ("~", "Changed"), ("-", "Deleted")], max_length=1),
                ),
                (
                    "history_user",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "historical role assignment",
                "verbose_name_plural": "historical role assignments",
                "ordering": ("-history_date", "-history_id"),
                "get_latest_by": ("history_date", "history_id"),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name="RoleAssignment",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("role", models.CharField(max_length=20)),
                ("assigned_at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="role_assignments",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "role assignment",
                "ordering": ["user_id", "role"],
                "constraints": [models.UniqueConstraint(fields=("user", "role"), name="role_assignment_unique")],
            },
        ),
        migrations.RunPython(role_assignments_record, migrations.RunPython.noop),
    ]
