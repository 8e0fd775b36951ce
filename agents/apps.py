from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from agents.demo import demo_content_create
        from agents.receivers import tools_after_migrate
        from tenants.hooks import demo_content_register

        post_migrate.connect(tools_after_migrate, dispatch_uid="agents.tools_sync")
        # tenants cannot import agents: provisioning with --demo calls what is registered here.
        demo_content_register(demo_content_create)
