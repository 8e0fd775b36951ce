from django.db import migrations, models

CREATE = r"""
CREATE TABLE governance_auditevent (
    body text NOT NULL,
    prev_hash char(64) NOT NULL,
    hash char(64) NOT NULL,
    seq bigint GENERATED ALWAYS AS (((body::jsonb) ->> 'seq')::bigint) STORED PRIMARY KEY,
    created_at timestamptz GENERATED ALWAYS AS
        (to_timestamp((((body::jsonb) ->> 'ts_us')::bigint)::double precision / 1000000.0)) STORED,
    actor_type varchar(16) GENERATED ALWAYS AS ((body::jsonb) ->> 'actor_type') STORED,
    actor_id varchar(64) GENERATED ALWAYS AS ((body::jsonb) ->> 'actor_id') STORED,
    actor_label varchar(200) GENERATED ALWAYS AS ((body::jsonb) ->> 'actor_label') STORED,
    verb varchar(100) GENERATED ALWAYS AS ((body::jsonb) ->> 'verb') STORED,
    target_type varchar(100) GENERATED ALWAYS AS ((body::jsonb) ->> 'target_type') STORED,
    target_id varchar(100) GENERATED ALWAYS AS ((body::jsonb) ->> 'target_id') STORED,
    correlation_id varchar(64) GENERATED ALWAYS AS ((body::jsonb) ->> 'correlation_id') STORED,
    data jsonb GENERATED ALWAYS AS ((body::jsonb) -> 'data') STORED
);
CREATE INDEX governance_auditevent_created_at ON governance_auditevent (created_at);
CREATE INDEX governance_auditevent_verb ON governance_auditevent (verb);
CREATE INDEX governance_auditevent_actor ON governance_auditevent (actor_type, actor_id);
CREATE INDEX governance_auditevent_target ON governance_auditevent (target_type, target_id);

CREATE FUNCTION governance_auditevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER governance_auditevent_append_only
    BEFORE UPDATE OR DELETE ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION governance_auditevent_refuse_change();
CREATE TRIGGER governance_auditevent_no_truncate
    BEFORE TRUNCATE ON governance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION governance_auditevent_refuse_change();
"""

DROP = r"""
DROP TABLE governance_auditevent;
DROP FUNCTION governance_auditevent_refuse_change();
"""


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        migrations.RunSQL(CREATE, DROP),
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("seq", models.BigIntegerField(primary_key=True, serialize=False)),
                ("body", models.TextField()),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
                (
                    "actor_type",
                    models.CharField(
                        choices=[("user", "User"), ("agent", "Agent"), ("system", "System")], max_length=16
                    ),
                ),
                ("actor_id", models.CharField(max_length=64)),
                ("actor_label", models.CharField(max_length=200)),
                ("verb", models.CharField(max_length=100)),
                ("target_type", models.CharField(max_length=100)),
                ("target_id", models.CharField(max_length=100)),
                ("correlation_id", models.CharField(max_length=64)),
                ("data", models.JSONField()),
            ],
            options={"db_table": "governance_auditevent", "managed": False, "ordering": ["-seq"]},
        ),
    ]
