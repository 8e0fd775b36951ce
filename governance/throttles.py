"""Per-tenant request throttle of the API: at most the tier's ``requests_per_minute`` (with the
tenant's overrides, tenants.selectors.tenant_limits) API requests per calendar minute.

A middleware rather than a DRF throttle class: it covers every view under /api/, DRF's or not,
and refuses before the view runs. Only requests that authenticated use up the tenant's quota:
the tenant's counter is read before the view and counted after it when the caller turned out
to be a signed-in user or a valid token, so that nobody can exhaust a tenant's API with
requests carrying no or forged credentials. Requests without any credentials (the token
endpoint, event intake) count against a counter of their own per tenant and client address,
with the same limit. A counter is one Redis key per minute (INCR and EXPIRE in one pipeline).
Over the limit: 429 with ``Retry-After`` (the seconds left in the minute) and the limit named in
the body. Redis down: requests pass (an outage of the counter must not take the API down),
checked again after a few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_tenants.utils import get_public_schema_name

from config.connection import connection
from config.errors import is_api_request
from tenants.selectors import tenant_limits

logger = logging.getLogger(__name__)

KEY_PREFIX = "vigil:throttle"
LIMIT_NAME = "requests_per_minute"
WINDOW_SECONDS = 60
# After a Redis error, requests pass unchecked for this long instead of each waiting on it.
_REDIS_BACKOFF_SECONDS = 5.0
_redis_down_until = 0.0


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)


def _key(schema: str, minute: int) -> str:
    return f"{KEY_PREFIX}:{connection.settings_dict['NAME']}:{schema}:{minute}"


def request_counted(*, schema: str, now: float | None = None, count: bool = True) -> int | None:
    """This tenant's (or counter's) API requests in the current minute, this one included when
    ``count``; None when the counter cannot be reached."""
    global _redis_down_until
    now = time.time() if now is None else now
    if now < _redis_down_until:
        return None
    key = _key(schema, int(now // WINDOW_SECONDS))
    try:
        if not count:
            return int(_redis().get(key) or 0)
        pipe = _redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS * 2)
        counted, _ = pipe.execute()
    except (redis.RedisError, OSError):
        _redis_down_until = now + _REDIS_BACKOFF_SECONDS
        logger.warning("api.throttle_unchecked", extra={"schema": schema})
        return None
    return int(counted)


def _without_credentials(request: HttpRequest) -> bool:
    return "HTTP_AUTHORIZATION" not in request.META and settings.SESSION_COOKIE_NAME not in request.COOKIES


def throttle_forget() -> int:
    """Drop every counter of this database (all tenants); returns how many."""
    client = _redis()
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}:{connection.settings_dict['NAME']}:*", count=500))
    return int(client.delete(*keys)) if keys else 0


class TenantThrottleMiddleware:
    """After the tenant middleware: counts each API request of a tenant's host."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if tenant is None or not is_api_request(request) or tenant.schema_name == get_public_schema_name():
            return self.get_response(request)
        now = time.time()
        limit = tenant_limits(tenant=tenant).requests_per_minute
        anonymous = _without_credentials(request)
        if anonymous:  # counted by address: a stranger's flood does not stop the tenant's API
            address = request.META.get("REMOTE_ADDR", "")
            count = request_counted(schema=f"{tenant.schema_name}:address:{address}", now=now)
        else:
            seen = request_counted(schema=tenant.schema_name, now=now, count=False)
            count = None if seen is None else seen + 1
        if count is not None and count > limit:
            retry_after = max(1, WINDOW_SECONDS - int(now % WINDOW_SECONDS))
            return JsonResponse(
                {
                    "code": "throttled",
                    "detail": f"This tenant's {tenant.tier} tier allows {limit} API requests a minute; "
                    f"retry in {retry_after} seconds.",
                    "extra": {"limit": LIMIT_NAME, "value": limit, "tier": tenant.tier, "retry_after": retry_after},
                },
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        response = self.get_response(request)
        user = getattr(request, "user", None)  # DRF sets it on this request too once it authenticated
        if not anonymous and user is not None and user.is_authenticated:
            request_counted(schema=tenant.schema_name, now=now)
        return response
