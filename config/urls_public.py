"""URLs of the public domain: the operators' admin."""

from django.urls import path

from tenants.admin import operator_site

urlpatterns = [
    path("admin/", operator_site.urls),
]
