from typing import Any

import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

LINK_NAME = "link users by verified email"
LINK_HELP = (
    "let a first sign-in take over the existing user with the same email, when the provider says the email is "
    "verified (email_verified); off: such a sign-in is refused"
)


def providers_record(apps: Any, schema_editor: Any) -> None:
    """The providers set before history was kept: their first record."""
    provider = apps.get_model("governance", "SsoProvider")
    historical = apps.get_model("governance", "HistoricalSsoProvider")
    now = timezone.now()
    historical.objects.bulk_create(
        [
            historical(
                id=row.pk,
                name=row.name,
                issuer=row.issuer,
                client_id=row.client_id,
                scopes=row.scopes,
                tid=row.tid,
                role_mapping=row.role_mapping,
                link_verified_email=row.link_verified_email,
                enabled=row.enabled,
                history_date=now,
                history_type="+",
                history_change_reason="set before history was kept",
            )
            for row in provider.objects.all()
        ]
    )


def identities_record(apps: Any, schema_editor: Any) -> None:
    """Users who signed in by single sign-on before identities were kept: each is bound to the
    (issuer, sub) its creation (sso.user_created) or, for a user who existed first and was
    matched by email, its latest sign-in (sso.signed_in) was audited with, so that they sign in
    as before. A pair already bound, or a user already bound at that issuer, is skipped."""
    event = apps.get_model("governance", "AuditEvent")
    provider = apps.get_model("governance", "SsoProvider")
    identity = apps.get_model("governance", "SsoIdentity")
    user = apps.get_model("auth", "User")
    providers = {row.issuer: row for row in provider.objects.all()}
    users = set(user.objects.values_list("pk", flat=True))
    taken: set[tuple[str, str]] = set()
    rows = []
    bound: set[tuple[int, str]] = set()
    # Creations first (the subject a user was made for), then sign-ins newest first.
    created = event.objects.filter(verb="sso.user_created").order_by("seq")
    signed_in = event.objects.filter(verb="sso.signed_in").order_by("-seq")
    for data, target_id in [*created.values_list("data", "target_id"), *signed_in.values_list("data", "target_id")]:
        issuer, subject = str(data.get("issuer", "")), str(data.get("sub", ""))
        user_id = int(target_id) if str(target_id).isdigit() and len(str(target_id)) <= 18 else None
        if issuer not in providers or not subject or user_id not in users or (issuer, subject) in taken:
            continue
        if (user_id, issuer) in bound:
            continue
        taken.add((issuer, subject))
        bound.add((user_id, issuer))
        rows.append(
            identity(
                user_id=user_id,
                provider=providers[issuer],
                issuer=issuer,
                subject=subject,
                email=str(data.get("username") or data.get("email") or "")[:254],
            )
        )
    identity.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0008_history"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="ssoprovider",
            name="link_verified_email",
            field=models.BooleanField(default=False, help_text=LINK_HELP, verbose_name=LINK_NAME),
        ),
        migrations.CreateModel(
            name="HistoricalSsoProvider",
            fields=[
                ("id", models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name="ID")),
                ("name", models.CharField(default="SSO", help_text="shown on the login button", max_length=100)),
                (
                    "issuer",
                    models.URLField(help_text="the provider's issuer URL, as its tokens name it", max_length=500),
                ),
                ("client_id", models.CharField(max_length=200)),
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
                (
                    "link_verified_email",
                    models.BooleanField(default=False, help_text=LINK_HELP, verbose_name=LINK_NAME),
                ),
                ("enabled", models.BooleanField(default=True)),
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
            ],
            options={
                "verbose_name": "historical single sign-on provider",
                "verbose_name_plural": "historical single sign-on providers",
                "ordering": ("-history_date", "-history_id"),
                "get_latest_by": ("history_date", "history_id"),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name="SsoIdentity",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("issuer", models.CharField(max_length=500)),
                ("subject", models.CharField(max_length=255)),
                ("email", models.CharField(blank=True, help_text="the email of the last sign-in", max_length=254)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("last_sign_in_at", models.DateTimeField(blank=True, null=True)),
                (
                    "provider",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="identities",
                        to="governance.ssoprovider",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="sso_identities",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "single sign-on identity",
                "verbose_name_plural": "single sign-on identities",
                "ordering": ["pk"],
                "constraints": [models.UniqueConstraint(fields=("issuer", "subject"), name="sso_identity_unique")],
            },
        ),
        migrations.RunPython(providers_record, migrations.RunPython.noop),
        migrations.RunPython(identities_record, migrations.RunPython.noop),
    ]
