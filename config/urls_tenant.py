"""URLs of a tenant's domain: its own admin, invitations, API."""

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tenants.views import InvitationAcceptView, InvitationDoneView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("invite/<uidb64>/<token>/", InvitationAcceptView.as_view(), name="invitation_accept"),
    path("invite/done/", InvitationDoneView.as_view(), name="invitation_done"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
