from django.apps import AppConfig


class HitlConfig(AppConfig):
    name = "hitl"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The engine (agents) cannot import hitl; it reaches approval requests through the
        # hooks it defines, which hitl fills in here.
        from agents.hooks import ApprovalHooks, approvals_register
        from hitl import policies, selectors, services
        from hitl.demo import demo_content_create
        from hitl.monitor import sla_metrics_tool_register
        from tenants.hooks import demo_content_register

        approvals_register(
            ApprovalHooks(
                open=services.approval_open,
                decided=selectors.approval_decided_for,
                close=services.approvals_close,
                gate=policies.gate_decide,
            )
        )
        demo_content_register(demo_content_create)  # the demo tenant's approval policies
        sla_metrics_tool_register()  # the monitor blueprint's tool
