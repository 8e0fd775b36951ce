"""The application role appends to the audit trail only through ``governance_audit_append``.

Web and workers log in as a role that owns nothing (config/dbroles.py), so only the owner can
alter the table, or disable or drop its append-only triggers. Here every role but the table's
owner loses INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES and TRIGGER on
``governance_auditevent`` (whatever default privileges gave it) and keeps SELECT, and the
append function runs with its owner's rights (SECURITY DEFINER), so appends still insert. Only
the roles that may read the table may call it. No role is named: the grantees are read from the
table's ACL, so this works with any role names, or with one role that does everything.

Why SECURITY DEFINER is safe here. The function lives in every schema and acts on the table of
the caller's current schema through the caller's search_path (a spare schema is renamed when
claimed, so no schema name can be fixed in it). A search path can make a name resolve to
objects the caller made, and those would run with the owner's rights, but:
- functions and operators are looked up in pg_catalog first and never in pg_temp, and the
  application role has no CREATE on any schema (default privileges give it USAGE only; PUBLIC
  has no CREATE on public), so no function or operator it could make is ever found;
- the one type named in the body is qualified (``pg_catalog.text``), the others are keywords;
- relations are looked up in pg_temp first, where any session may create a table named
  ``governance_auditevent`` (with a trigger that would run as the owner). So before any other
  statement the function checks that the name resolves to a table its owner owns (inside a
  SECURITY DEFINER function ``current_user`` is that owner), and refuses otherwise.
"""

import importlib

from django.db import migrations

APPEND_0003 = importlib.import_module("governance.migrations.0003_audit_append_function").CREATE

APPEND = r"""
CREATE OR REPLACE FUNCTION governance_audit_append(lock_class integer, before_seq text, before_ts text,
                                                   after_ts text)
RETURNS TABLE (seq bigint, hash char(64))
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $$
DECLARE
    head_seq bigint;
    head_hash char(64);
    event_body pg_catalog.text;
    digest char(64);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                   WHERE c.oid = pg_catalog.to_regclass('governance_auditevent')
                     AND pg_catalog.pg_get_userbyid(c.relowner) = current_user) THEN
        RAISE EXCEPTION 'governance_auditevent does not resolve to the audit table of schema %',
            pg_catalog.current_schema() USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF pg_catalog.getdatabaseencoding() <> 'UTF8' THEN
        RAISE EXCEPTION 'the audit chain needs a UTF8 database, not %', pg_catalog.getdatabaseencoding();
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(lock_class, pg_catalog.hashtext(pg_catalog.current_schema()));
    SELECT e.seq, e.hash INTO head_seq, head_hash FROM governance_auditevent e ORDER BY e.seq DESC LIMIT 1;
    head_seq := coalesce(head_seq, 0) + 1;
    head_hash := coalesce(head_hash, pg_catalog.repeat('0', 64));
    event_body := before_seq || head_seq || before_ts
        || (extract(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::bigint || after_ts;
    digest := pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(head_hash || event_body, 'UTF8')), 'hex');
    INSERT INTO governance_auditevent (body, prev_hash, hash) VALUES (event_body, head_hash, digest);
    RETURN QUERY SELECT head_seq, digest;
END
$$;
"""

# Each role but the owner that holds any privilege on the table loses its writes; those that
# may read it may append. The reverse gives the readers their writes back (the roles that had
# them before cannot be told apart) and the function to PUBLIC again, as it was.
PRIVILEGES = r"""
DO $$
DECLARE
    audit regclass := pg_catalog.format('%I.governance_auditevent', pg_catalog.current_schema());
    append regprocedure := pg_catalog.format('%I.governance_audit_append(integer, text, text, text)',
                                             pg_catalog.current_schema());
    grantee record;
BEGIN
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', append);
    FOR grantee IN
        SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                    ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS name,
               bool_or(a.privilege_type = 'SELECT') AS reads
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = audit AND a.grantee <> c.relowner
        GROUP BY a.grantee
    LOOP
        EXECUTE pg_catalog.format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %s FROM %s',
                                  audit, grantee.name);
        IF grantee.reads THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', append, grantee.name);
        END IF;
    END LOOP;
END $$;
"""

PRIVILEGES_REVERSE = r"""
DO $$
DECLARE
    audit regclass := pg_catalog.format('%I.governance_auditevent', pg_catalog.current_schema());
    append regprocedure := pg_catalog.format('%I.governance_audit_append(integer, text, text, text)',
                                             pg_catalog.current_schema());
    grantee record;
BEGIN
    FOR grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS name
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = audit AND a.grantee <> c.relowner AND a.privilege_type = 'SELECT'
    LOOP
        EXECUTE pg_catalog.format('GRANT INSERT, UPDATE, DELETE ON %s TO %s', audit, grantee.name);
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM %s', append, grantee.name);
    END LOOP;
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', append);
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("governance", "0003_audit_append_function")]

    operations = [
        migrations.RunSQL(APPEND, APPEND_0003.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)),
        migrations.RunSQL(PRIVILEGES, PRIVILEGES_REVERSE),
    ]
