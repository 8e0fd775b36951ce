# `manage.py migrate` is django-tenants' migrate_schemas; ours runs it as the owner role.
from tenants.management.commands.migrate_schemas import Command

__all__ = ["Command"]
