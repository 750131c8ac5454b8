"""The checks for options that can only be wrong by configuration: E028-E030."""

import pytest
from django.db import models
from django.test.utils import isolate_apps

from django_flowdock.checks import check_model
from django_flowdock.mixins import FlowdockComment, FlowdockThread
from tests.testapp.models import Card, CardComment

pytestmark = pytest.mark.filterwarnings("ignore:Model '.*' was already registered")


def ids(errors):
    return [e.id for e in errors]


def test_the_field_types_model_and_its_comments_pass():
    assert check_model(Card) == []
    assert check_model(CardComment) == []


@isolate_apps("tests.testapp")
def test_status_colour_for_a_value_the_choices_never_hold_is_e028():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        state = models.CharField(
            max_length=10, choices=[("open", "Open"), ("done", "Done")], default="open"
        )

        class FlowdockMeta:
            title = "state"
            status = "state"
            status_colors = {"open": "green", "Done": "grey", "closed": "red"}

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E028"]
    assert "'closed'" in errors[0].msg
    assert "'open', 'done'" in errors[0].msg
    assert "'Done'" not in errors[0].msg  # a label is looked up too
    assert "stored values" in errors[0].hint


@isolate_apps("tests.testapp")
def test_status_colours_of_a_status_without_choices_or_a_status_method_are_not_checked():
    class Free(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        state = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "state"
            status = "state"
            status_colors = {"anything": "green"}

    class Computed(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        state = models.CharField(max_length=10, choices=[("open", "Open")])

        class FlowdockMeta:
            title = "state"
            status = "state"
            status_colors = {"firing": "red"}

        def get_flowdock_status(self):
            return "firing"

    assert check_model(Free) == []
    assert check_model(Computed) == []


@isolate_apps("tests.testapp")
def test_fields_entry_reading_past_a_many_relation_is_e029():
    class Label(models.Model):
        class Meta:
            app_label = "testapp"

        name = models.CharField(max_length=10)

    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        subject = models.CharField(max_length=10)
        labels = models.ManyToManyField(Label)

        class FlowdockMeta:
            title = "subject"
            fields = ["labels", ("Label names", "labels.name")]

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E029"]
    assert "'Label names' reads 'labels.name' past 'labels'" in errors[0].msg
    assert "get_flowdock_fields()" in errors[0].hint


@isolate_apps("tests.testapp")
def test_fields_entry_that_is_not_a_name_or_callable_is_e029():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        subject = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "subject"
            fields = [("Size", 42), ("Length", lambda obj: len(obj.subject))]

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E029"]
    assert "42" in errors[0].msg


@isolate_apps("tests.testapp")
def test_fields_that_is_not_a_list_or_holds_a_bad_entry_is_e029_not_a_crash():
    class NotAList(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        subject = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "subject"
            fields = "subject"

    class BadEntry(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        subject = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "subject"
            fields = [("Label", "subject", "extra")]

    errors = check_model(NotAList)
    assert "django_flowdock.E029" in ids(errors)
    assert "must be a list" in errors[ids(errors).index("django_flowdock.E029")].msg
    errors = check_model(BadEntry)
    assert ids(errors) == ["django_flowdock.E029"]
    assert "('Label', 'subject', 'extra')" in errors[0].msg


@isolate_apps("tests.testapp")
def test_comment_thread_through_a_many_relation_is_e030():
    class Topic(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        subject = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "subject"

    class Note(FlowdockComment, models.Model):
        class Meta:
            app_label = "testapp"

        topics = models.ManyToManyField(Topic)
        text = models.TextField()

        class FlowdockMeta:
            thread = "topics"
            body = "text"

    errors = check_model(Note)
    assert ids(errors) == ["django_flowdock.E030"]
    assert "'topics'" in errors[0].msg
    assert "foreign key" in errors[0].hint


# The check only reads DATABASES; no connection is made to the databases named here.
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_without_immediate_transactions_is_w004_with_the_fix(settings):
    from django_flowdock.checks import check_sqlite_delivery

    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "immediate"}
    settings.DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3"},
        "other": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "y.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        },
    }
    [warning] = check_sqlite_delivery()
    assert warning.id == "django_flowdock.W004"
    assert 'Database "default"' in warning.msg
    assert '"transaction_mode": "IMMEDIATE"' in warning.hint

    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    assert check_sqlite_delivery() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIMEOUT", "10"),
        ("TIMEOUT", (1, 2, 3)),
        ("MAX_AGE", 0),
        ("BATCH_SIZE", 2.5),
        ("OAUTH_SCOPES", "flow integration"),
        ("DEFAULT_AUTHOR", {"email": "ops@example.com"}),
        ("CLAIM_TIMEOUT", True),
        ("ACTION_TOKEN_LEEWAY", "10"),
        ("ACTION_TOKEN_LEEWAY", 600),
        ("POLL_INTERVAL", 0),
        ("TEST_DELIVERY", True),
    ],
)
def test_setting_of_the_wrong_shape_is_e031_naming_it_and_its_default(settings, name, value):
    from django_flowdock.checks import check_setting_values

    settings.FLOWDOCK = {**settings.FLOWDOCK, name: value}
    [error] = check_setting_values()
    assert error.id == "django_flowdock.E031"
    assert f'FLOWDOCK["{name}"]' in error.msg
    assert "remove it for the default" in error.hint


def test_claim_that_can_expire_during_a_post_is_e032_at_start_up(settings):
    from django_flowdock.checks import check_setting_values

    settings.FLOWDOCK = {**settings.FLOWDOCK, "TIMEOUT": (3, 10), "CLAIM_TIMEOUT": 13}
    [error] = check_setting_values()
    assert error.id == "django_flowdock.E032"
    assert 'Raise FLOWDOCK["CLAIM_TIMEOUT"]' in error.hint
    settings.FLOWDOCK = {**settings.FLOWDOCK, "CLAIM_TIMEOUT": 14}
    assert check_setting_values() == []


def test_encryption_key_that_is_not_a_fernet_key_is_e033(settings):
    from cryptography.fernet import Fernet

    from django_flowdock.checks import check_setting_values

    good = Fernet.generate_key().decode()
    settings.FLOWDOCK = {**settings.FLOWDOCK, "ENCRYPTION_KEYS": [good, "not-a-key"]}
    [error] = check_setting_values()
    assert error.id == "django_flowdock.E033"
    assert '["ENCRYPTION_KEYS"][1]' in error.msg


def test_model_checks_look_only_at_the_apps_asked_for(monkeypatch):
    from django.apps import apps

    from django_flowdock import checks as flowdock_checks

    seen = []
    monkeypatch.setattr(flowdock_checks, "check_model", lambda model: seen.append(model) or [])
    flowdock_checks.check_models([apps.get_app_config("testapp")])
    assert seen and {model._meta.app_label for model in seen} == {"testapp"}
    seen.clear()
    flowdock_checks.check_models()
    assert {model._meta.app_label for model in seen} > {"testapp", "django_flowdock"}
