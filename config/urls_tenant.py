"""URLs of a tenant's domain: its own admin, invitations, API."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter
from rest_framework.viewsets import ViewSetMixin

from agents.api import AgentViewSet, BlueprintListApi, EventViewSet, TaskViewSet, ToolViewSet
from governance.api import DashboardApi, LiveTicketCreateApi
from hitl.api import ApprovalViewSet
from knowledge.api import CollectionViewSet, DocumentViewSet, KnowledgeSearchApi
from tenants.views import InvitationAcceptView, InvitationDoneView

# An object in an API path is an ASCII id or slug. DRF's default, anything but "/" and ".",
# would hand other scripts' digits (superscripts, Arabic-Indic) to views that parse ids with int().
LOOKUP_VALUE_REGEX = "[-A-Za-z0-9_]+"


class Router(DefaultRouter):
    def get_lookup_regex(self, viewset: type[ViewSetMixin], lookup_prefix: str = "") -> str:
        lookup_url_kwarg = getattr(viewset, "lookup_url_kwarg", None) or getattr(viewset, "lookup_field", "pk")
        value = getattr(viewset, "lookup_value_regex", LOOKUP_VALUE_REGEX)
        return f"(?P<{lookup_prefix}{lookup_url_kwarg}>{value})"


router = Router()
router.register("agents", AgentViewSet, basename="agent")
router.register("tools", ToolViewSet, basename="tool")
router.register("tasks", TaskViewSet, basename="task")
router.register("events", EventViewSet, basename="event")
router.register("hitl", ApprovalViewSet, basename="approval")
router.register("knowledge/collections", CollectionViewSet, basename="knowledge-collection")
router.register("knowledge/documents", DocumentViewSet, basename="knowledge-document")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("invite/<uidb64>/<token>/", InvitationAcceptView.as_view(), name="invitation_accept"),
    path("invite/done/", InvitationDoneView.as_view(), name="invitation_done"),
    path("api/v1/agents/blueprints/", BlueprintListApi.as_view(), name="blueprint-list"),
    path("api/v1/auth/token/", obtain_auth_token, name="api-token"),
    path("api/v1/live/ticket/", LiveTicketCreateApi.as_view(), name="live-ticket"),
    path("api/v1/governance/dashboard/", DashboardApi.as_view(), name="governance-dashboard"),
    path("api/v1/knowledge/search/", KnowledgeSearchApi.as_view(), name="knowledge-search"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
