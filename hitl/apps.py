from django.apps import AppConfig


class HitlConfig(AppConfig):
    name = "hitl"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The engine (agents) cannot import hitl; it reaches approval requests through the
        # hooks it defines, which hitl fills in here.
        from agents.hooks import ApprovalHooks, approvals_register
        from hitl import selectors, services
        from hitl.monitor import sla_metrics_tool_register

        approvals_register(
            ApprovalHooks(
                open=services.approval_open, decided=selectors.approval_decided_for, close=services.approvals_close
            )
        )
        sla_metrics_tool_register()  # the monitor blueprint's tool
