"""The base of every domain error, the one DRF exception handler that renders them, and the
error responses that the middleware answers before or around a view (same shape on /api/)."""

from __future__ import annotations

import logging
from http.client import responses as STATUS_PHRASES
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# What a client should wait before retrying while the database is unreachable.
RETRY_AFTER_SECONDS = 5
# The `code` of an error response that Django (not a view) produced, by HTTP status.
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}
# SQLSTATEs of a server that is going away, not accepting connections yet or full; without a
# SQLSTATE, psycopg failed on the client side (refused, reset, closed connection).
_UNAVAILABLE_SQLSTATES = {"53300", "57P01", "57P02", "57P03"}


class VigilError(Exception):
    """A refusal the caller can act on. ``code`` is stable; ``status`` is the HTTP status."""

    code: str = "vigil_error"
    status: int = http.HTTP_400_BAD_REQUEST

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __str__(self) -> str:
        return self.detail


class NameTaken(VigilError):
    """A name that must be unique in the tenant is another row's already (409, the field named
    in ``extra.fields``)."""

    code = "name_taken"
    status = http.HTTP_409_CONFLICT

    def __init__(self, detail: str, *, field: str = "name", **extra: Any) -> None:
        super().__init__(detail, fields={field: "already in use"}, **extra)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, VigilError):
        return Response({"code": exc.code, "detail": exc.detail, "extra": exc.extra}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response({"code": "invalid", "detail": "invalid input", "extra": {"fields": detail}}, status=400)
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response({"code": "invalid", "detail": "invalid input", "extra": {"fields": exc.detail}}, status=400)
    # DRF maps these to NotFound/PermissionDenied only inside its own handler; map them here
    # too so that their bodies get the common shape.
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, drf_exceptions.APIException):
        response.data = {
            "code": exc.get_codes() if isinstance(exc.get_codes(), str) else "error",
            "detail": str(exc.detail),
            "extra": {},
        }
    if response is not None and isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        # DRF turns these into 403 when the first authenticator (session) has no challenge;
        # token clients must get 401 to tell missing or bad credentials from a refused role.
        response.status_code = http.HTTP_401_UNAUTHORIZED
        response["WWW-Authenticate"] = 'Token realm="api"'
    return response


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def error_response(
    request: HttpRequest, *, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> HttpResponse:
    """The error shape on API paths; plain text elsewhere (pages keep Django's own look)."""
    if is_api_request(request):
        return JsonResponse({"code": code, "detail": detail, "extra": {}}, status=status, headers=headers)
    return HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8", headers=headers)


def status_error_response(request: HttpRequest, status: int) -> HttpResponse:
    """An error response for a bare status, with the standard phrase as its detail."""
    return error_response(
        request, status=status, code=STATUS_CODES.get(status, "error"), detail=STATUS_PHRASES.get(status, "Error")
    )


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached (down, restarting, connection
    lost), as opposed to a statement that failed on a working server."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES


def database_unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    logger.warning("database.unavailable", extra={"path": request.path, "error": type(exc).__name__})
    return error_response(
        request,
        status=503,
        code="database_unavailable",
        detail="The database is unavailable; retry in a few seconds.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
