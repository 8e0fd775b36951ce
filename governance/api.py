"""Governance API: the dashboard's figures and the live stream's tickets."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.connection import connection
from governance import live
from governance.access import Capability, user_may
from governance.dashboard import dashboard_get


class CanView(BasePermission):
    """Any role: every role may view (what each user sees is narrowed by their agent scope)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return user_may(request.user, Capability.VIEW)


class LiveTicketCreateApi(APIView):
    """A single-use ticket that opens one live socket on this tenant within 30 seconds:
    connect to ``/ws/live/`` offering the subprotocols ``vigil.live`` and
    ``vigil.ticket.<ticket>`` (the token itself never travels in a URL)."""

    permission_classes = [CanView]

    @extend_schema(request=None, responses={201: dict})
    def post(self, request: Request) -> Response:
        ticket = live.ticket_issue(schema=connection.schema_name, user_id=int(str(request.user.pk)))
        return Response(
            {
                "ticket": ticket,
                "expires_in": live.TICKET_TTL_SECONDS,
                "url": "/ws/live/",
                "subprotocols": [live.SUBPROTOCOL, f"{live.TICKET_PREFIX}{ticket}"],
            },
            status=201,
        )


class DashboardApi(APIView):
    """The governance dashboard's figures (what the admin's index page shows), narrowed to the
    agents the caller may see; ``seq`` is the live stream's number they are current with."""

    permission_classes = [CanView]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(dashboard_get(user=request.user).as_dict())
