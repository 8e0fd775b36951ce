"""Operator-defined LLM connections (public schema): agents name one, never a URL or a key."""

import django.contrib.postgres.fields
import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0003_public_tenant"),
    ]

    operations = [
        migrations.CreateModel(
            name="LLMConnection",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.SlugField(unique=True)),
                (
                    "base_url",
                    models.URLField(
                        help_text="an OpenAI-compatible API, e.g. https://api.openai.com/v1", max_length=500
                    ),
                ),
                (
                    "api_key_env",
                    models.CharField(help_text="the workers' environment variable that holds the key", max_length=100),
                ),
                (
                    "allowed_models",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=100),
                        size=None,
                        help_text="the models agents may pick, comma-separated",
                    ),
                ),
                (
                    "timeout_seconds",
                    models.FloatField(
                        default=20,
                        help_text="per call; capped below the step lease",
                        validators=[
                            django.core.validators.MinValueValidator(0.1),
                            django.core.validators.MaxValueValidator(600),
                        ],
                    ),
                ),
                ("available_to_all", models.BooleanField(default=False, help_text="every tenant may use it")),
                ("enabled", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "tenants",
                    models.ManyToManyField(
                        blank=True,
                        help_text="the tenants that may use it, when not available to all",
                        related_name="llm_connections",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "verbose_name": "LLM connection",
                "ordering": ["name"],
            },
        ),
    ]
