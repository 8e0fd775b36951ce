"""The base of every domain error, and the one DRF exception handler that renders them."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class VigilError(Exception):
    """A refusal the caller can act on. ``code`` is stable; ``status`` is the HTTP status."""

    code = "vigil_error"
    status = http.HTTP_400_BAD_REQUEST

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __str__(self) -> str:
        return self.detail


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
        response.data = {"code": exc.get_codes() if isinstance(exc.get_codes(), str) else "error",
                         "detail": str(exc.detail), "extra": {}}
    if response is not None and isinstance(exc, (drf_exceptions.NotAuthenticated,
                                                 drf_exceptions.AuthenticationFailed)):
        # DRF turns these into 403 when the first authenticator (session) has no challenge;
        # token clients must get 401 to tell missing or bad credentials from a refused role.
        response.status_code = http.HTTP_401_UNAUTHORIZED
        response["WWW-Authenticate"] = 'Token realm="api"'
    return response
