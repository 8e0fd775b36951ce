"""URLs of the public domain: the operators' admin and their tenant API."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from governance.api_auth import TokenListCreateApi, TokenObtainApi, TokenRevokeApi
from tenants.admin import operator_site
from tenants.api import (
    TenantActivateApi,
    TenantDetailApi,
    TenantLimitsApi,
    TenantListApi,
    TenantSuspendApi,
    TenantUsageApi,
)

urlpatterns = [
    path("admin/", operator_site.urls),
    # The operators' tenant API (tenants.api), with operators' own tokens (public schema).
    path("api/v1/auth/token/", TokenObtainApi.as_view(), name="operator-api-token"),
    path("api/v1/auth/tokens/", TokenListCreateApi.as_view(), name="operator-api-token-list"),
    path("api/v1/auth/tokens/<int:pk>/", TokenRevokeApi.as_view(), name="operator-api-token-detail"),
    path("api/v1/tenants/", TenantListApi.as_view(), name="operator-tenant-list"),
    path("api/v1/tenants/<int:pk>/", TenantDetailApi.as_view(), name="operator-tenant-detail"),
    path("api/v1/tenants/<int:pk>/usage/", TenantUsageApi.as_view(), name="operator-tenant-usage"),
    path("api/v1/tenants/<int:pk>/activate/", TenantActivateApi.as_view(), name="operator-tenant-activate"),
    path("api/v1/tenants/<int:pk>/suspend/", TenantSuspendApi.as_view(), name="operator-tenant-suspend"),
    path("api/v1/tenants/<int:pk>/limits/", TenantLimitsApi.as_view(), name="operator-tenant-limits"),
    # The schema of the operators' API (the tenants' hosts serve their own).
    path("api/schema/", SpectacularAPIView.as_view(urlconf="config.urls_public"), name="operator-api-schema"),
]
