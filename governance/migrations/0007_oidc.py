from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("governance", "0006_checkpoints")]

    operations = [
        migrations.CreateModel(
            name="SsoProvider",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(default="SSO", help_text="shown on the login button", max_length=100)),
                (
                    "issuer",
                    models.URLField(help_text="the provider's issuer URL, as its tokens name it", max_length=500),
                ),
                ("client_id", models.CharField(max_length=200)),
                ("client_secret_encrypted", models.TextField(default="", editable=False)),
                ("scopes", models.CharField(default="openid email profile groups tid", max_length=300)),
                (
                    "tid",
                    models.CharField(
                        help_text="the tid claim every token must carry", max_length=200, verbose_name="expected tid"
                    ),
                ),
                (
                    "role_mapping",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text='claim -> value -> role, e.g. {"groups": {"vigil-admins": "admin", '
                        '"vigil-reviewers": "reviewer"}}',
                    ),
                ),
                ("enabled", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"verbose_name": "single sign-on provider", "ordering": ["pk"]},
        ),
    ]
