"""URLs to include under a prefix: ``path("flowdock/", include("django_flowdock.urls"))``."""

from django.urls import path

from django_flowdock.actions import identity_views
from django_flowdock.actions import views as action_views
from django_flowdock.connect import views

app_name = "django_flowdock"

urlpatterns = [
    path("setup/", views.setup, name="setup"),
    path("setup/<int:application_id>/", views.setup, name="setup-application"),
    path("setup/confirm/", views.setup_confirm, name="setup-confirm"),
    path("setup/done/", views.setup_done, name="setup-done"),
    path("oauth/callback/", views.oauth_callback, name="oauth-callback"),
    path("configure/", views.configure, name="configure"),
    path("actions/<str:signed>/", action_views.action_view, name="action"),
    path("identity/claim/", identity_views.claim, name="identity-claim"),
]
