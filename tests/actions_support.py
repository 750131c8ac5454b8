"""Shared setup for the action, action-security and identity tests."""

from django.contrib.auth.models import Permission, User

from django_flowdock.models import FlowdockUser, OAuthApplication, Source
from django_flowdock.testing import action_request

SECRET = "app-secret-1-0123456789abcdef0123456789abcdef"
FLOWDOCK_USER_ID = "77"


def make_application(client_id="app-1", secret=SECRET):
    return OAuthApplication.objects.create(
        name=client_id, client_id=client_id, client_secret=secret
    )


def make_user(username="marty", *, can_change=True, link=True):
    user = User.objects.create_user(username, f"{username}@example.com", "pw", first_name="")
    if can_change:
        user.user_permissions.add(
            Permission.objects.get(codename="change_ticket", content_type__app_label="testapp")
        )
    if link:
        FlowdockUser.objects.create(flowdock_user_id=FLOWDOCK_USER_ID, user=user, name="Marty")
    return User.objects.get(pk=user.pk)  # fresh, without a cached permission set


def make_source():
    return Source.objects.create(name="Helpdesk", flow_token="token-1")


def post(client, request):
    url, body, headers = request
    return client.post(url, body, content_type="application/json", headers=headers)


def signed(instance, action, **kwargs):
    kwargs.setdefault("client_secret", SECRET)
    kwargs.setdefault("flowdock_user_id", FLOWDOCK_USER_ID)
    return action_request(instance, action, **kwargs)
