from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from governance import (
            history,  # noqa: F401  (who and why in history; role assignments' records)
            lockout,  # noqa: F401  (counts failed sign-ins towards a lockout)
            receivers,  # noqa: F401  (connects Django's auth and migrate hooks)
        )
