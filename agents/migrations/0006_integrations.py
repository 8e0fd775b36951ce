import django.contrib.postgres.fields
import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0005_agent_object_permissions"),
    ]

    operations = [
        migrations.CreateModel(
            name="Credential",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.SlugField(unique=True)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("bearer", "Bearer token (Authorization: Bearer …)"),
                            ("basic", "Basic auth (user:password)"),
                            ("header", "A header of its own (name and value)"),
                        ],
                        max_length=10,
                    ),
                ),
                ("header_name", models.CharField(blank=True, help_text="for kind 'header'", max_length=100)),
                ("secret", models.TextField(editable=False)),
                ("created_by", models.CharField(editable=False, max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("rotated_at", models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="attempts",
            field=models.PositiveIntegerField(db_default=0),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="last_error",
            field=models.CharField(blank=True, db_default="", max_length=500),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("retrying", "Retrying after a failed attempt"),
                    ("delivered", "Delivered"),
                    ("failed", "Refused by the endpoint (4xx)"),
                    ("dead", "Dead letter: attempts spent"),
                    ("unrouted", "No endpoint for its kind"),
                ],
                db_default="pending",
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="Endpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.SlugField(unique=True)),
                ("url", models.URLField(max_length=500)),
                (
                    "kinds",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=50),
                        help_text="the effect kinds delivered here",
                        size=None,
                    ),
                ),
                ("signing_secret", models.TextField(editable=False)),
                ("enabled", models.BooleanField(default=True)),
                (
                    "timeout_seconds",
                    models.FloatField(
                        default=10,
                        validators=[
                            django.core.validators.MinValueValidator(0.1),
                            django.core.validators.MaxValueValidator(60),
                        ],
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "credential",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="endpoints",
                        to="agents.credential",
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="endpoint",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="messages",
                to="agents.endpoint",
            ),
        ),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(
                condition=models.Q(("status__in", ["pending", "retrying"])),
                fields=["next_attempt_at"],
                name="outbox_to_deliver",
            ),
        ),
    ]
