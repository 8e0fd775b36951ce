"""pgvector is created once, in the public schema; tenant schemas reach it through their
search path (django-tenants puts public after the tenant's schema). A tenant-app migration
must never create it. This app is shared-only, so this runs on public alone."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public", migrations.RunSQL.noop),
    ]
