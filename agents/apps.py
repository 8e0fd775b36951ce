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
        # The tenant admin's Usage page, and the dashboard's count of tokens this month.
        from agents import usage
        from governance.dashboard import usage_counter_register

        usage_counter_register(limit="tokens_per_month", counter=usage.tokens_this_month)
