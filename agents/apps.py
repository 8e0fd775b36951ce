from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from agents.receivers import tools_after_migrate

        post_migrate.connect(tools_after_migrate, dispatch_uid="agents.tools_sync")
