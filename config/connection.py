"""The default database connection as django-tenants extends it, with those extensions typed.

django-tenants replaces the PostgreSQL backend with one that knows the current schema and
tenant; Django's type stubs only know the base wrapper. Import ``connection`` from here
wherever the schema is read or switched: it is the very same object as
``django.db.connection``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.db import connection as _connection

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    class TenantConnection(BaseDatabaseWrapper):
        schema_name: str
        # The Tenant model instance (or django-tenants' FakeTenant for a bare schema).
        tenant: Any

        def set_tenant(self, tenant: Any, include_public: bool = True) -> None: ...

        def set_schema(self, schema_name: str, include_public: bool = True, tenant_type: str | None = None) -> None: ...

        def set_schema_to_public(self) -> None: ...


connection = cast("TenantConnection", _connection)
