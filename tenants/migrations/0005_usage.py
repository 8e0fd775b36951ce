from decimal import Decimal
from typing import Any

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

# The price table's first rows (USD per million tokens in, out); operators edit them in their admin.
SEED_PRICES = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "offline": (Decimal("0"), Decimal("0")),
}


def seed_prices(apps: Any, schema_editor: Any) -> None:
    ModelPrice = apps.get_model("tenants", "ModelPrice")
    for model, (price_in, price_out) in SEED_PRICES.items():
        ModelPrice.objects.get_or_create(
            model=model, defaults={"input_per_million": price_in, "output_per_million": price_out}
        )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_llm_connection")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.CreateModel(
            name="ModelPrice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "model",
                    models.CharField(help_text="the model's name, as agents name it", max_length=100, unique=True),
                ),
                (
                    "input_per_million",
                    models.DecimalField(
                        decimal_places=4,
                        help_text="USD per million input tokens",
                        max_digits=12,
                        validators=[django.core.validators.MinValueValidator(0)],
                    ),
                ),
                (
                    "output_per_million",
                    models.DecimalField(
                        decimal_places=4,
                        help_text="USD per million output tokens",
                        max_digits=12,
                        validators=[django.core.validators.MinValueValidator(0)],
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"verbose_name": "model price", "ordering": ["model"]},
        ),
        migrations.CreateModel(
            name="UsageDay",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("model", models.CharField(max_length=100)),
                ("runs", models.BigIntegerField(default=0)),
                ("steps", models.BigIntegerField(default=0)),
                ("tokens_in", models.BigIntegerField(default=0)),
                ("tokens_out", models.BigIntegerField(default=0)),
                ("cost_usd", models.DecimalField(decimal_places=6, default=0, max_digits=18)),
                ("approvals", models.BigIntegerField(default=0)),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_days",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "verbose_name": "usage",
                "verbose_name_plural": "usage",
                "ordering": ["-day", "tenant", "model"],
                "indexes": [models.Index(fields=["day"], name="usage_day")],
                "constraints": [models.UniqueConstraint(fields=("tenant", "day", "model"), name="usage_day_unique")],
            },
        ),
        migrations.RunPython(seed_prices, migrations.RunPython.noop),
    ]
