"""URLs of a tenant's domain: its own admin, invitations, API."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter
from rest_framework.viewsets import ViewSetMixin

from agents.api import AgentViewSet, BlueprintListApi, EventViewSet, TaskViewSet, ToolViewSet
from agents.api_intake import EventIngestApi, EventSourceViewSet
from agents.api_integrations import CredentialViewSet, EndpointViewSet, OutboxViewSet
from agents.usage import UsageApi
from governance.api import DashboardApi, LiveTicketCreateApi
from governance.api_auth import MeApi, TokenListCreateApi, TokenObtainApi, TokenRevokeApi, UnlockApi
from governance.api_roles import PermissionCheckApi, RoleAssignApi, RoleListApi, RoleRevokeApi
from governance.audit_api import AuditExportApi, AuditListApi
from governance.sso_views import SsoCallbackView, SsoLoginView
from hitl.api import ApprovalViewSet
from hitl.api_policies import PolicyViewSet
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
router.register("event-sources", EventSourceViewSet, basename="event-source")
router.register("hitl/policies", PolicyViewSet, basename="hitl-policy")  # before "hitl", whose ids would match
router.register("hitl", ApprovalViewSet, basename="approval")
router.register("knowledge/collections", CollectionViewSet, basename="knowledge-collection")
router.register("knowledge/documents", DocumentViewSet, basename="knowledge-document")
router.register("integrations/credentials", CredentialViewSet, basename="integration-credential")
router.register("integrations/endpoints", EndpointViewSet, basename="integration-endpoint")
router.register("integrations/outbox", OutboxViewSet, basename="integration-outbox")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("invite/<uidb64>/<token>/", InvitationAcceptView.as_view(), name="invitation_accept"),
    path("invite/done/", InvitationDoneView.as_view(), name="invitation_done"),
    path("oidc/authenticate/", SsoLoginView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", SsoCallbackView.as_view(), name="oidc_authentication_callback"),
    path("api/v1/agents/blueprints/", BlueprintListApi.as_view(), name="blueprint-list"),
    path("api/v1/auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("api/v1/auth/tokens/", TokenListCreateApi.as_view(), name="api-token-list"),
    path("api/v1/auth/tokens/<int:pk>/", TokenRevokeApi.as_view(), name="api-token-detail"),
    path("api/v1/auth/me/", MeApi.as_view(), name="auth-me"),
    path("api/v1/auth/unlock/", UnlockApi.as_view(), name="auth-unlock"),
    path("api/v1/governance/roles/", RoleListApi.as_view(), name="governance-roles"),
    path("api/v1/governance/roles/assign/", RoleAssignApi.as_view(), name="governance-roles-assign"),
    path("api/v1/governance/roles/revoke/", RoleRevokeApi.as_view(), name="governance-roles-revoke"),
    path("api/v1/governance/permissions/check/", PermissionCheckApi.as_view(), name="governance-permission-check"),
    path("api/v1/live/ticket/", LiveTicketCreateApi.as_view(), name="live-ticket"),
    path("api/v1/governance/dashboard/", DashboardApi.as_view(), name="governance-dashboard"),
    path("api/v1/governance/audit/", AuditListApi.as_view(), name="governance-audit"),
    path("api/v1/governance/audit/export/", AuditExportApi.as_view(), name="governance-audit-export"),
    path("api/v1/knowledge/search/", KnowledgeSearchApi.as_view(), name="knowledge-search"),
    path("api/v1/usage/", UsageApi.as_view(), name="usage"),
    path("api/v1/events/ingest/<slug:source>/", EventIngestApi.as_view(), name="event-ingest"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
