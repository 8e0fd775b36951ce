"""One round trip instead of two for the serialized part of an append: take the schema's
audit lock and read the chain head. The function is VOLATILE, so under READ COMMITTED its
SELECT takes a fresh snapshot after the lock is granted and sees the previous holder's
commit (a plain `SELECT lock(), (SELECT head)` would not)."""

from django.db import migrations

CREATE = r"""
CREATE FUNCTION governance_audit_lock_head(lock_class integer)
RETURNS TABLE (head_seq bigint, head_hash char(64))
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_class, hashtext(current_schema()));
    RETURN QUERY SELECT e.seq, e.hash FROM governance_auditevent e ORDER BY e.seq DESC LIMIT 1;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, "DROP FUNCTION governance_audit_lock_head(integer);")]
