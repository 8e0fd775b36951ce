import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

STATUSES = [
    ("pending", "Pending"),
    ("assigned", "Assigned"),
    ("escalated", "Escalated"),
    ("approved", "Approved"),
    ("rejected", "Rejected"),
    ("edited", "Approved as edited"),
    ("expired", "Expired"),
    ("cancelled", "Cancelled"),
    ("clarification", "Awaiting clarification"),
]
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
    ("asked", "Question asked"),
    ("answered", "Question answered"),
    ("shadow", "Shadow policy"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("hitl", "0004_policies"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AlterField(
            model_name="approvalrequest",
            name="status",
            field=models.CharField(choices=STATUSES, default="pending", max_length=20),
        ),
        migrations.AlterField(
            model_name="approvalevent",
            name="kind",
            field=models.CharField(choices=EVENT_KINDS, max_length=20),
        ),
        # A request waiting for an answer is still open: one open request per gated step.
        migrations.RemoveConstraint(model_name="approvalrequest", name="approval_task_step_open_unique"),
        migrations.AddConstraint(
            model_name="approvalrequest",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ("pending", "assigned", "escalated", "clarification"))),
                fields=("task", "step_index"),
                name="approval_task_step_open_unique",
            ),
        ),
        migrations.CreateModel(
            name="Clarification",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("question", models.TextField(max_length=2000)),
                ("asked_at", models.DateTimeField()),
                ("answer", models.TextField(blank=True, max_length=2000)),
                ("answered_at", models.DateTimeField(blank=True, null=True)),
                (
                    "due_left",
                    models.DurationField(blank=True, help_text="what was left of the SLA when asked", null=True),
                ),
                (
                    "remind_left",
                    models.DurationField(blank=True, help_text="what was left until the reminder", null=True),
                ),
                (
                    "approval",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="clarifications",
                        to="hitl.approvalrequest",
                    ),
                ),
                (
                    "asked_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="questions_asked",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "answered_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="questions_answered",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["approval", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("answered_at__isnull", True)),
                        fields=("approval",),
                        name="clarification_one_open",
                    )
                ],
            },
        ),
    ]
