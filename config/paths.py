"""Every API path answers with and without its trailing slash.

The URL patterns keep their one canonical form, with the slash (so ``reverse``, the OpenAPI
schema and the links in answers do not change). A request for ``/api/…`` without the slash
that matches no pattern, where the same path with the slash does, is served as if the slash
were there: no redirect, so a client's POST (an approval, a cancel) is never turned into a GET
or dropped, which is what Django's APPEND_SLASH redirect does to it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import is_valid_path

from config.errors import is_api_request


class OptionalSlashMiddleware:
    """After the tenant middleware (it chooses the URLconf), before CommonMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if is_api_request(request) and not path.endswith("/"):
            urlconf = getattr(request, "urlconf", None)
            if not is_valid_path(path, urlconf) and is_valid_path(f"{path}/", urlconf):
                request.path_info = f"{path}/"
                request.path = f"{request.path}/"
        return self.get_response(request)
