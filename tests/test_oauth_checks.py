"""System checks for connecting flows: django_flowdock.E010-E012."""

from __future__ import annotations

from django_flowdock.checks import check_connect_routes

#: A URLconf without django_flowdock.urls, for the last test.
urlpatterns: list = []


def test_connecting_flows_needs_sessions(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("SessionMiddleware")]
    [error] = check_connect_routes()
    assert error.id == "django_flowdock.E010"
    assert "SessionMiddleware" in error.hint


def test_site_url_must_be_absolute(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": "helpdesk.example"}
    [error] = check_connect_routes()
    assert error.id == "django_flowdock.E011"
    assert "helpdesk.example" in error.msg


def test_site_url_may_be_left_to_the_request(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": None}
    assert check_connect_routes() == []


def test_scopes_must_include_integration(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "OAUTH_SCOPES": ["flow", "profile"]}
    [error] = check_connect_routes()
    assert error.id == "django_flowdock.E012"


def test_projects_without_the_urls_are_not_checked(settings):
    settings.ROOT_URLCONF = __name__
    settings.FLOWDOCK = {**settings.FLOWDOCK, "OAUTH_SCOPES": []}
    settings.MIDDLEWARE = []
    assert check_connect_routes() == []
