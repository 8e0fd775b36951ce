"""A tenant URLconf with views that fail, for the error-shape tests (tests/config/test_api_errors.py)."""

from __future__ import annotations

import socket

from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from config.urls_tenant import urlpatterns as tenant_urlpatterns


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("this view always fails")


def database_gone(request: HttpRequest) -> HttpResponse:
    """Fails the way a view does when PostgreSQL went away after the tenant lookup: a real
    connection attempt through Django's backend, to a port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    default = connections["default"]
    unreachable = type(default)({**default.settings_dict, "PORT": closed_port}, alias="unreachable")
    unreachable.ensure_connection()
    return HttpResponse("unreachable")


class DatabaseGoneApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> HttpResponse:
        return database_gone(request._request)


urlpatterns = [
    path("api/v1/broken/", broken),
    path("api/v1/database-gone/", database_gone),
    path("api/v1/database-gone-in-drf/", DatabaseGoneApi.as_view()),
    path("broken/", broken),
    path("database-gone/", database_gone),
    *tenant_urlpatterns,
]
