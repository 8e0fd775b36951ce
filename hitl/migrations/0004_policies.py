import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

EVENT_KINDS = [
    ("opened", "Opened"),
    ("assigned", "Assigned"),
    ("claimed", "Claimed"),
    ("released", "Released"),
    ("reassigned", "Reassigned"),
    ("reminded", "Reminded"),
    ("escalated", "Escalated"),
    ("approved", "Approved"),
    ("rejected", "Rejected"),
    ("edited", "Approved as edited"),
    ("expired", "Expired"),
    ("voted", "Voted"),
    ("shadow", "Shadow policy"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("hitl", "0003_queue"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Policy",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.SlugField(max_length=100, unique=True)),
                ("description", models.CharField(blank=True, max_length=500)),
                ("enabled", models.BooleanField(default=True)),
                (
                    "shadow",
                    models.BooleanField(default=False, help_text="record what it would require without applying it"),
                ),
                (
                    "order",
                    models.PositiveIntegerField(
                        default=100, help_text="lower first: the first matching policy decides"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"verbose_name_plural": "policies", "ordering": ["order", "id"]},
        ),
        migrations.AddField(
            model_name="approvalrequest",
            name="quorum",
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="approvalrequest",
            name="shadow",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AlterField(
            model_name="approvalevent",
            name="kind",
            field=models.CharField(choices=EVENT_KINDS, max_length=20),
        ),
        migrations.CreateModel(
            name="PolicyVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.PositiveIntegerField()),
                ("conditions", models.JSONField(blank=True, default=dict)),
                (
                    "gate",
                    models.CharField(
                        choices=[("none", "None: the step runs without approval"), ("approval", "Approval")],
                        default="approval",
                        max_length=10,
                    ),
                ),
                ("approver_role", models.CharField(default="reviewer", max_length=30)),
                ("quorum", models.PositiveSmallIntegerField(default=1)),
                (
                    "priority",
                    models.PositiveSmallIntegerField(
                        blank=True, choices=[(1, "low"), (2, "medium"), (3, "high"), (4, "critical")], null=True
                    ),
                ),
                ("sla_minutes", models.JSONField(blank=True, default=dict)),
                ("ladder", models.JSONField(blank=True, default=dict)),
                (
                    "terminal",
                    models.CharField(
                        choices=[
                            ("expire", "Expire"),
                            ("auto_reject", "Auto-reject"),
                            ("auto_approve", "Auto-approve (low risk only)"),
                        ],
                        default="expire",
                        max_length=20,
                    ),
                ),
                ("reason", models.CharField(blank=True, max_length=500)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "policy",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="versions", to="hitl.policy"
                    ),
                ),
            ],
            options={"ordering": ["policy", "-version"]},
        ),
        migrations.AddField(
            model_name="policy",
            name="current",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="hitl.policyversion",
            ),
        ),
        migrations.AddField(
            model_name="approvalrequest",
            name="policy_version",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="requests",
                to="hitl.policyversion",
            ),
        ),
        migrations.CreateModel(
            name="ApprovalVote",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("verdict", models.CharField(max_length=10)),
                ("action_hash", models.CharField(max_length=64)),
                ("reason", models.CharField(blank=True, max_length=1000)),
                ("created_at", models.DateTimeField()),
                (
                    "approval",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="votes", to="hitl.approvalrequest"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="approval_votes",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["approval", "id"],
                "constraints": [models.UniqueConstraint(fields=("approval", "user"), name="approval_vote_once")],
            },
        ),
        migrations.AddConstraint(
            model_name="policyversion",
            constraint=models.UniqueConstraint(fields=("policy", "version"), name="policy_version_unique"),
        ),
    ]
