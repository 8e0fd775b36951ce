"""Liveness and readiness probes, answered before tenant resolution so that a load
balancer can call them on any host name."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from kombu import Connection

from config.connection import connection

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"; the reason is returned
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def check_redis() -> str | None:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure means "not ready"; the reason is returned
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def check_broker() -> str | None:
    """The Celery broker: CELERY_BROKER_URL may name another server than REDIS_URL (RabbitMQ)."""
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=1) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:  # any failure means "not ready"; the reason is returned
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def readiness() -> tuple[int, dict[str, object]]:
    checks = {"database": check_database(), "redis": check_redis(), "broker": check_broker()}
    failing = {name: reason for name, reason in checks.items() if reason}
    body: dict[str, object] = {name: "ok" if not reason else "failing" for name, reason in checks.items()}
    if failing:
        body["status"] = "unavailable"
        body["failing"] = failing
        logger.warning("readiness.failed", extra={"failing": sorted(failing)})
        return 503, body
    body["status"] = "ok"
    return 200, body


class HealthMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            status, body = readiness()
            return JsonResponse(body, status=status)
        return self.get_response(request)
