from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from knowledge.demo import demo_content_create
        from knowledge.tools import search_tool_register
        from tenants.hooks import demo_content_register

        # agents cannot import knowledge: the tool joins the agents' registry from here, before
        # any migrate mirrors the registry into Tool rows.
        search_tool_register()
        demo_content_register(demo_content_create)
