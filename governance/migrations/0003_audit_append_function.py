"""An append in one statement: take the schema's audit lock, read the chain head, and insert
the next event, with its seq, timestamp and hash filled in by the server.

The caller sends the event's canonical JSON in three pieces, split where the two values only
the server knows (``seq`` and ``ts_us``) go. The function joins them, hashes the result with
the same formula as ``governance.hashchain.chain_hash`` (sha256 of prev_hash ‖ body, UTF-8,
hex) and inserts it. Like 0002, the function is VOLATILE, so under READ COMMITTED its SELECT
takes a fresh snapshot after the lock is granted and sees the previous holder's commit.
``verify_audit`` re-checks every hash in Python, so the two implementations check each other.
"""

import importlib

from django.db import migrations

HEAD_FUNCTION = importlib.import_module("governance.migrations.0002_audit_head_function").CREATE

CREATE = r"""
CREATE FUNCTION governance_audit_append(lock_class integer, before_seq text, before_ts text, after_ts text)
RETURNS TABLE (seq bigint, hash char(64))
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head_seq bigint;
    head_hash char(64);
    event_body text;
    digest char(64);
BEGIN
    IF pg_catalog.getdatabaseencoding() <> 'UTF8' THEN
        RAISE EXCEPTION 'the audit chain needs a UTF8 database, not %', pg_catalog.getdatabaseencoding();
    END IF;
    PERFORM pg_advisory_xact_lock(lock_class, hashtext(current_schema()));
    SELECT e.seq, e.hash INTO head_seq, head_hash FROM governance_auditevent e ORDER BY e.seq DESC LIMIT 1;
    head_seq := coalesce(head_seq, 0) + 1;
    head_hash := coalesce(head_hash, repeat('0', 64));
    event_body := before_seq || head_seq || before_ts
        || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint || after_ts;
    digest := encode(sha256(convert_to(head_hash || event_body, 'UTF8')), 'hex');
    INSERT INTO governance_auditevent (body, prev_hash, hash) VALUES (event_body, head_hash, digest);
    RETURN QUERY SELECT head_seq, digest;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("governance", "0002_audit_head_function")]

    operations = [
        migrations.RunSQL(CREATE, "DROP FUNCTION governance_audit_append(integer, text, text, text);"),
        # Replaced by the function above.
        migrations.RunSQL("DROP FUNCTION governance_audit_lock_head(integer);", HEAD_FUNCTION),
    ]
