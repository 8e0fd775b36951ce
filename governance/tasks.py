"""Celery entry points of governance."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="governance.audit_checkpoint", ignore_result=True)
def audit_checkpoint() -> int:
    """Beat, every VIGIL_CHECKPOINT_MINUTES: sign and write the head of every audit chain
    (governance/checkpoints.py). Returns how many checkpoints were written; a chain that
    fails to verify is logged as an error and gets none."""
    from governance.checkpoints import checkpoints_take

    written, refused = checkpoints_take()
    for problem in refused:
        logger.error("audit.checkpoint_refused", extra={"problem": problem})
    return sum(1 for result in written if result.path is not None)
