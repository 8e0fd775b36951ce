from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy


class InvitationAcceptView(auth_views.PasswordResetConfirmView):
    """The one-time link from provisioning: the invited user sets a password. Django's token
    includes the password hash, so the link stops working once it has been used."""

    template_name = "tenants/invitation_accept.html"
    success_url = reverse_lazy("invitation_done")
    post_reset_login = False


class InvitationDoneView(auth_views.PasswordResetCompleteView):
    template_name = "tenants/invitation_done.html"
