"""The row of the public schema (operators' admin) and its domain, VIGIL_PUBLIC_DOMAIN."""

from django.conf import settings
from django.db import migrations


def create_public_tenant(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    Domain = apps.get_model("tenants", "Domain")
    public, _ = Tenant.objects.get_or_create(
        schema_name="public", defaults={"name": "Operators", "tier": "enterprise", "status": "active"}
    )
    Domain.objects.get_or_create(domain=settings.VIGIL_PUBLIC_DOMAIN, defaults={"tenant": public, "is_primary": True})


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_vector_extension")]

    operations = [migrations.RunPython(create_public_tenant, migrations.RunPython.noop)]
