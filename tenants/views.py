from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.db import transaction
from django.http import HttpResponse
from django.urls import reverse_lazy

from governance.actors import Actor
from governance.services import audit_record


class InvitationAcceptView(auth_views.PasswordResetConfirmView):
    """The one-time link from provisioning: the invited user sets a password. Django's token
    includes the password hash, so the link stops working once it has been used."""

    template_name = "tenants/invitation_accept.html"
    success_url = reverse_lazy("invitation_done")
    post_reset_login = False

    def form_valid(self, form: Any) -> HttpResponse:
        with transaction.atomic():
            response = super().form_valid(form)
            audit_record(
                actor=Actor.for_user(form.user),
                verb="auth.invitation_accepted",
                target_type="user",
                target_id=form.user.pk,
                data={"username": form.user.get_username()},
            )
        return response


class InvitationDoneView(auth_views.PasswordResetCompleteView):
    template_name = "tenants/invitation_done.html"
