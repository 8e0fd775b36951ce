from __future__ import annotations

from celery import shared_task

from tenants.services import spare_pool_fill


@shared_task(name="tenants.tasks.spare_pool_refill", ignore_result=True)
def spare_pool_refill() -> int:
    """Beat: keep the warm pool of spare schemas at VIGIL_SPARE_POOL_SIZE."""
    return spare_pool_fill()
