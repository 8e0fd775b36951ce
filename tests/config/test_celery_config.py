"""Celery reads the project's CELERY_* settings (from a plain copy) and publishes through the
Redis transport that keeps one client per channel."""

from __future__ import annotations

from django.conf import settings

from config.broker import Channel, Transport
from config.celery import app


def test_celery_sees_the_django_celery_settings() -> None:
    assert app.conf.task_acks_late is settings.CELERY_TASK_ACKS_LATE is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert app.conf.task_routes == settings.CELERY_TASK_ROUTES
    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX


def test_the_broker_channel_reuses_one_redis_client(celery_env: dict[str, str]) -> None:
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        given = object()
        with channel.conn_or_acquire(given) as client:
            assert client is given
