"""Flowdock's Configuration URI: a source's settings, for its owner or staff."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType

from django_flowdock.models import OAuthApplication, OAuthToken, Source
from tests.testapp.models import Project


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("owner", password="pw")


@pytest.fixture
def source(db, owner):
    application = OAuthApplication.objects.create(name="App", client_id="id", client_secret="s")
    token = OAuthToken.objects.create(application=application, user=owner, access_token="a")
    return Source.objects.create(
        name="Helpdesk",
        flow_token="t",
        application=application,
        token=token,
        flowdock_id="17",
        flow_id="flow-uuid",
        flow_name="Main",
        flow_path="acme/main",
    )


URL = "/flowdock/configure/?integration_id=17&flow=flow-uuid"


def test_owner_chooses_items_events_and_scope(client, owner, source):
    apollo = Project.objects.create(name="Apollo")
    client.force_login(owner)
    page = client.get(URL).content.decode()
    assert "Configure “Helpdesk” in Main" in page
    assert 'value="testapp.ticket"' in page and 'value="commented"' in page
    scope = f"{ContentType.objects.get_for_model(Project).pk}:{apollo.pk}"

    response = client.post(
        URL, {"models": ["testapp.ticket"], "events": ["created", "commented"], "scope": scope}
    )

    assert b"Settings saved." in response.content
    source.refresh_from_db()
    assert source.settings == {"models": ["testapp.ticket"], "events": ["created", "commented"]}
    assert source.scope == apollo
    assert source.accepts("testapp.ticket", "created")
    assert not source.accepts("testapp.ticket", "updated")
    assert not source.accepts("testapp.incident", "created")


def test_unticking_everything_receives_everything_again(client, owner, source):
    source.settings = {"models": ["testapp.ticket"], "events": ["created"], "other": 1}
    source.save()
    client.force_login(owner)
    client.post(URL, {"scope": ""})
    source.refresh_from_db()
    assert source.settings == {"other": 1}
    assert source.scope_content_type is None


def test_other_users_may_not_configure_but_staff_with_permission_may(
    client, source, django_user_model
):
    stranger = django_user_model.objects.create_user("eve", password="pw")
    client.force_login(stranger)
    assert client.get(URL).status_code == 403

    stranger.user_permissions.add(Permission.objects.get(codename="change_source"))
    assert client.get(URL).status_code == 200


def test_unknown_source_is_not_found(client, owner, source):
    client.force_login(owner)
    response = client.get("/flowdock/configure/?integration_id=99&flow=flow-uuid")
    assert response.status_code == 404
    assert b"No source connected here matches" in response.content


def test_configuration_needs_sign_in(client, source, settings):
    settings.LOGIN_URL = "/admin/login/"
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_configure_without_flowdock_parameters_is_404_not_a_hand_made_source(
    db, client, django_user_model
):
    Source.objects.create(name="By hand", flow_token="secret-token")  # no Flowdock ids
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))

    response = client.get("/flowdock/configure/")

    assert response.status_code == 404
    assert "By hand" not in response.content.decode()


def test_configure_with_a_nul_byte_in_its_parameters_is_404_not_500(db, client, django_user_model):
    """PostgreSQL refuses NUL in text, so such a lookup raised DataError (a 500)."""
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))

    response = client.get("/flowdock/configure/", {"integration_id": "1\x00", "flow": "f"})

    assert response.status_code == 404
