from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from governance.context import new_correlation_id, set_correlation_id

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class CorrelationIdMiddleware:
    """Takes X-Request-ID when it is a sane token, else makes one; echoes it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        correlation_id = incoming if _SAFE_ID.match(incoming) else new_correlation_id()
        set_correlation_id(correlation_id)
        try:
            response = self.get_response(request)
        finally:
            set_correlation_id(None)
        response["X-Request-ID"] = correlation_id
        return response
