from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from governance.models import ActorType


@dataclass(frozen=True)
class Actor:
    """Who did it: a user, an agent or the system itself (commands, beat, provisioning)."""

    type: str
    id: str
    label: str

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(type=ActorType.SYSTEM, id="", label=label)

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(type=ActorType.USER, id="", label="anonymous")
        return cls(type=ActorType.USER, id=str(user.pk), label=user.get_username())

    @classmethod
    def operator(cls, label: str) -> Actor:
        """An operator acting through manage.py (no user row in the tenant's schema)."""
        return cls(type=ActorType.SYSTEM, id="", label=f"operator:{label}")
