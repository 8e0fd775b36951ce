"""The one-time invitation link printed when a tenant is provisioned without an admin password."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from django.test import Client

from tests.conftest import host_client
from tests.tenants.conftest import Provision
from tests.tenants.stored import audit_head, audit_since, user_in

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

NEW_PASSWORD = "lantern-orbit-quietly-42"


@pytest.fixture
def invitation_path(provision: Provision) -> str:
    result = provision(admin_password=None)
    assert result.invitation_url is not None
    return urlsplit(result.invitation_url).path


def _accept(client: Client, path: str) -> _MonkeyPatchedWSGIResponse:
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"] is True
    set_password_path = form_page.redirect_chain[-1][0]
    return client.post(set_password_path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})


def test_the_invitation_link_shows_a_set_password_form_for_the_admin(invitation_path: str) -> None:
    response = host_client("gamma.localhost").get(invitation_path, follow=True)

    assert response.status_code == 200
    assert response.context["validlink"] is True
    assert response.context["form"].user.username == "gina@gamma.example"
    assert b"Choose a password for <strong>gina@gamma.example</strong>" in response.content
    assert not user_in("gamma", "gina@gamma.example")[0].has_usable_password()


def test_setting_a_password_through_the_invitation_lets_the_admin_log_in(invitation_path: str) -> None:
    client = host_client("gamma.localhost")

    response = _accept(client, invitation_path)

    assert response.status_code == 302 and response["Location"] == "/invite/done/"
    assert b"Your password is set" in client.get("/invite/done/").content
    admin, _ = user_in("gamma", "gina@gamma.example")
    assert admin.check_password(NEW_PASSWORD)
    seq = audit_head("gamma")
    login = client.post(
        "/admin/login/", {"username": "gina@gamma.example", "password": NEW_PASSWORD, "next": "/admin/"}
    )
    assert login.status_code == 302 and login["Location"] == "/admin/"
    assert len(audit_since("gamma", seq, verb="auth.login_succeeded")) == 1


def test_a_used_invitation_link_is_no_longer_valid(invitation_path: str) -> None:
    accepting_client = host_client("gamma.localhost")
    _accept(accepting_client, invitation_path)

    for client in (accepting_client, host_client("gamma.localhost")):
        response = client.get(invitation_path, follow=True)
        assert response.status_code == 200 and response.context["validlink"] is False
        assert b"This invitation link is no longer valid" in response.content
    admin, _ = user_in("gamma", "gina@gamma.example")
    assert admin.check_password(NEW_PASSWORD)


def test_accepting_an_invitation_is_audited_in_the_tenants_chain(invitation_path: str) -> None:
    seq = audit_head("gamma")

    _accept(host_client("gamma.localhost"), invitation_path)

    [event] = audit_since("gamma", seq, verb="auth.invitation_accepted")
    admin, _ = user_in("gamma", "gina@gamma.example")
    assert (event.target_type, event.target_id, event.actor_label) == ("user", str(admin.pk), "gina@gamma.example")
    assert event.data == {"username": "gina@gamma.example"}


def test_a_used_invitation_link_cannot_set_the_password_again(invitation_path: str) -> None:
    _accept(host_client("gamma.localhost"), invitation_path)
    seq = audit_head("gamma")
    uid = invitation_path.strip("/").split("/")[1]

    response = host_client("gamma.localhost").post(
        f"/invite/{uid}/set-password/", {"new_password1": "another-Secret-77", "new_password2": "another-Secret-77"}
    )

    assert response.status_code == 200 and b"no longer valid" in response.content
    assert user_in("gamma", "gina@gamma.example")[0].check_password(NEW_PASSWORD)
    assert audit_since("gamma", seq) == []


def test_a_tampered_token_is_not_valid(invitation_path: str) -> None:
    tampered = invitation_path.rstrip("/")[:-3] + "zzz/"

    response = host_client("gamma.localhost").get(tampered, follow=True)

    assert response.context["validlink"] is False and b"no longer valid" in response.content
    assert not user_in("gamma", "gina@gamma.example")[0].has_usable_password()


def test_an_invitation_for_one_tenant_is_not_valid_on_another(invitation_path: str) -> None:
    response = host_client("acme.localhost").get(invitation_path, follow=True)

    assert response.status_code == 200 and response.context["validlink"] is False
    assert not user_in("gamma", "gina@gamma.example")[0].has_usable_password()
