"""Each system check id catches its misconfiguration and says the fix."""

import pytest
from django.db import models
from django.test.utils import isolate_apps

from django_flowdock.checks import check_model, check_settings, check_site_url_https
from django_flowdock.mixins import FlowdockComment, FlowdockThread
from tests.testapp.models import Plain, Ticket

pytestmark = pytest.mark.filterwarnings("ignore:Model '.*' was already registered")


def ids(errors):
    return [e.id for e in errors]


# Django 6.1 runs the database checks against every connection, even for these tags.
@pytest.mark.django_db
def test_project_models_pass_all_checks():
    from django.core import checks

    assert checks.run_checks(tags=[checks.Tags.models]) == []
    assert check_settings() == []


@isolate_apps("tests.testapp")
def test_unknown_flowdockmeta_option_is_e001():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        subject = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "subject"
            colour = "red"

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E001"]
    assert "colour" in errors[0].msg
    assert "status_colors" in errors[0].hint


@isolate_apps("tests.testapp")
def test_option_naming_a_missing_attribute_is_e002():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        subject = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "subjet"
            fields = ["priority", ("Owner", "owner.name")]

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E002"] * 3
    assert "'subjet'" in errors[0].msg
    assert "get_flowdock_title()" in errors[0].hint


@isolate_apps("tests.testapp")
def test_unknown_status_colour_is_e003():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        subject = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "subject"
            status_colors = {"open": "pink"}

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E003"]
    assert "green" in errors[0].hint


@isolate_apps("tests.testapp")
def test_comment_thread_not_pointing_to_a_thread_model_is_e004():
    class Note(FlowdockComment, models.Model):
        class Meta:
            app_label = "testapp"

        plain = models.ForeignKey(Plain, on_delete=models.CASCADE)

        class FlowdockMeta:
            thread = "plain"

    class Orphan(FlowdockComment, models.Model):
        text = models.TextField()

        class Meta:
            app_label = "testapp"

        class FlowdockMeta:
            body = "text"

    assert ids(check_model(Note)) == ["django_flowdock.E004"]
    assert "Add FlowdockThread to testapp.Plain" in check_model(Note)[0].hint
    assert ids(check_model(Orphan)) == ["django_flowdock.E004"]


@isolate_apps("tests.testapp")
def test_comment_pointing_to_a_thread_model_passes():
    class Note(FlowdockComment, models.Model):
        class Meta:
            app_label = "testapp"

        ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE)

        class FlowdockMeta:
            thread = "ticket"

    assert check_model(Note) == []


@isolate_apps("tests.testapp")
def test_thread_without_title_is_w001():
    class Untitled(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

    assert ids(check_model(Untitled)) == ["django_flowdock.W001"]


def test_unknown_setting_is_e005(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_ULR": "x"}
    errors = check_settings()
    assert ids(errors) == ["django_flowdock.E005"]
    assert "API_ULR" in errors[0].msg
    assert "API_URL" in errors[0].hint


def test_removed_action_cache_setting_is_w002_naming_the_database_store(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "ACTION_CACHE": "default"}
    errors = check_settings()
    assert ids(errors) == ["django_flowdock.W002"]
    assert "kept in the database" in errors[0].msg
    assert errors[0].hint == 'Remove "ACTION_CACHE" from FLOWDOCK.'


def test_removed_max_attempts_setting_is_w002_naming_max_age(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "MAX_ATTEMPTS": 8}
    errors = check_settings()
    assert ids(errors) == ["django_flowdock.W002"]
    assert 'FLOWDOCK["MAX_AGE"]' in errors[0].msg


def test_plain_http_site_url_is_w003_in_deploy_checks(settings):
    from django.core import checks

    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": "http://helpdesk.example"}
    errors = check_site_url_https()
    assert ids(errors) == ["django_flowdock.W003"]
    assert "https://" in errors[0].hint
    deploy = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert "django_flowdock.W003" in ids(deploy)
    assert "django_flowdock.W003" not in ids(checks.run_checks(tags=[checks.Tags.security]))


@pytest.mark.parametrize(
    "site_url", ["https://helpdesk.example", "http://127.0.0.1:8000", "http://localhost", None]
)
def test_https_or_loopback_site_url_passes_w003(settings, site_url):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": site_url}
    assert check_site_url_https() == []


@pytest.mark.parametrize("url", ["api.flowdock.com", "ftp://x", "https://", 42, "https://x/?a=1"])
def test_malformed_api_url_is_e006(settings, url):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": url}
    assert ids(check_settings()) == ["django_flowdock.E006"]


def test_unknown_delivery_backend_is_e007(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "carrier.Pigeon"}
    errors = check_settings()
    assert ids(errors) == ["django_flowdock.E007"]
    assert "immediate" in errors[0].hint
