"""``{% governance_dashboard as figures %}``: the dashboard's figures for the signed-in user of
a tenant's admin (None on the operators' public site)."""

from __future__ import annotations

from typing import Any

from django import template

from config.connection import connection
from governance.access import Capability, user_may
from governance.dashboard import Dashboard, dashboard_get

register = template.Library()


@register.simple_tag(takes_context=True)
def governance_dashboard(context: dict[str, Any]) -> Dashboard | None:
    request = context.get("request")
    if request is None or connection.schema_name == "public" or not user_may(request.user, Capability.VIEW):
        return None
    return dashboard_get(user=request.user)
