"""Failures injected from the outside: a receiver connected for one block makes the next save of
a model raise, so provisioning fails midway without touching project code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.models import Model
from django.db.models.signals import post_save


@contextmanager
def save_fails(model: type[Model]) -> Iterator[None]:
    uid = f"tests.tenants.save_fails.{model.__name__}"

    def _boom(sender: type[Model], **kwargs: Any) -> None:
        raise RuntimeError(f"injected failure saving {sender.__name__}")

    post_save.connect(_boom, sender=model, weak=False, dispatch_uid=uid)
    try:
        yield
    finally:
        post_save.disconnect(sender=model, dispatch_uid=uid)
