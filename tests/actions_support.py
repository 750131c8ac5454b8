"""Shared setup for the action, action-security and identity tests."""

from django.contrib.auth.models import Permission, User

from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import FlowdockUser, OAuthApplication, Source
from django_flowdock.testing import action_request

SECRET = "app-secret-1-0123456789abcdef0123456789abcdef"
FLOWDOCK_USER_ID = "77"


def make_application(client_id="app-1", secret=SECRET, *, source=True):
    """An OAuth application and (unless ``source=False``) a source of it, as connecting
    a flow leaves them: threads created afterwards are posted through that source, so
    the application's secret may sign actions on them."""
    application = OAuthApplication.objects.create(
        name=client_id, client_id=client_id, client_secret=secret
    )
    if source:
        make_source(application, name=f"{client_id} flow")
    return application


def make_user(username="marty", *, can_change=True, link=True):
    user = User.objects.create_user(username, f"{username}@example.com", "pw", first_name="")
    if can_change:
        user.user_permissions.add(
            Permission.objects.get(codename="change_ticket", content_type__app_label="testapp")
        )
    if link:
        FlowdockUser.objects.create(flowdock_user_id=FLOWDOCK_USER_ID, user=user, name="Marty")
    return User.objects.get(pk=user.pk)  # fresh, without a cached permission set


def make_source(application=None, *, name="Helpdesk", scope=None):
    source = Source(name=name, flow_token=f"token-{name}", application=application)
    if scope is not None:
        source.scope = scope
    source.save()
    return source


def post(client, request):
    url, body, headers = request
    return client.post(url, body, content_type="application/json", headers=headers)


def signed(instance, action, **kwargs):
    # Flowdock shows a button only once the thread was posted: the changes captured so
    # far are fanned out to their sources, which is what ties a thread to applications.
    fan_out()
    kwargs.setdefault("client_secret", SECRET)
    kwargs.setdefault("flowdock_user_id", FLOWDOCK_USER_ID)
    return action_request(instance, action, **kwargs)
