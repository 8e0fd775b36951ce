"""The edge of the API: what every /api/ request is refused for before any view or tenant
lookup runs, and the one error shape for every API error response, whoever produced it."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response

from config.errors import (
    database_unavailable,
    database_unavailable_response,
    error_response,
    is_api_request,
    status_error_response,
)

GetResponse = Callable[[HttpRequest], HttpResponse]


class ApiRequestMiddleware:
    """On /api/ paths: a path that is not ASCII is 404 (ids are ASCII digits or slugs, and
    Python's ``int`` and ``str.isdigit`` accept other scripts' digits); a body over
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``VIGIL_MAX_BODY_BYTES``) is 413; and an error response
    that Django rather than the API produced (unknown URL, unknown host, server error) is
    rewritten into the ``{"code", "detail", "extra"}`` shape."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_request(request):
            return self.get_response(request)
        if not request.path_info.isascii():
            return status_error_response(request, 404)
        refusal = self._body_refusal(request)
        if refusal is not None:
            return refusal
        return self._shaped(request, self.get_response(request))

    def _body_refusal(self, request: HttpRequest) -> HttpResponse | None:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not (length.isascii() and length.isdigit()):
            return error_response(
                request, status=400, code="bad_request", detail="Content-Length must be a number of bytes."
            )
        try:
            # Django refuses a declared length over the limit without reading, and otherwise
            # reads at most one byte past it (a chunked body has no declared length).
            request.body  # noqa: B018
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return error_response(
                request, status=413, code="request_too_large", detail=f"The request body is larger than {limit} bytes."
            )
        return None

    @staticmethod
    def _shaped(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # DRF responses carry the shape already (config.errors.api_exception_handler), in
        # whatever format the client negotiated.
        if (
            response.status_code < 400
            or isinstance(response, Response)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        shaped = status_error_response(request, response.status_code)
        for header, value in response.items():
            if header.lower() not in ("content-type", "content-length"):
                shaped[header] = value
        shaped.cookies = response.cookies
        return shaped


class DatabaseUnavailableMiddleware:
    """A view that finds the database unreachable answers 503 with ``Retry-After`` (JSON on
    /api/, plain text elsewhere) instead of a server error. The tenant lookup, which runs
    before any view, does the same in tenants.middleware."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if database_unavailable(exception):
            return database_unavailable_response(request, exception)
        return None
