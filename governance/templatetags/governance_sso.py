"""The admin login page's single sign-on button: shown on a tenant's domain whose tenant has
an enabled identity provider."""

from __future__ import annotations

from django import template
from django_tenants.utils import get_public_schema_name

from config.connection import connection
from governance.models import SsoProvider
from governance.sso import sso_provider

register = template.Library()


@register.simple_tag
def tenant_sso_provider() -> SsoProvider | None:
    if connection.schema_name == get_public_schema_name():
        return None
    return sso_provider()
