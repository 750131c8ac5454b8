"""Declared actions become the thread's schema.org actions and run as the linked user."""

import pytest
from django.core import signing
from django.db import models
from django.test.utils import isolate_apps
from django.urls import resolve

from django_flowdock.actions.declarations import (
    actions_for,
    declared_actions,
    flowdock_action,
    get_action,
    unsign_target,
)
from django_flowdock.checks import check_action_routes, check_model
from django_flowdock.context import acting_as
from django_flowdock.mixins import FlowdockThread
from django_flowdock.models import Message
from django_flowdock.signals import action_performed
from django_flowdock.threads.render import thread_state
from tests.actions_support import make_application, make_user, post, signed
from tests.testapp.models import Ticket

urlpatterns: list = []  # a URLconf without django_flowdock.urls, for E025


def names(actions):
    return [action["name"] for action in actions]


# Declaring


def test_update_actions_are_offered_with_signed_absolute_targets(db):
    ticket = Ticket.objects.create(subject="Polish")

    actions = actions_for(ticket, user=None)

    assert actions[0]["@type"] == "UpdateAction"
    assert actions[0]["name"] == "Assign to me"
    assert actions[0]["description"] == "Make me the assignee"
    target = actions[0]["target"]
    assert target["@type"] == "EntryPoint"
    assert target["httpMethod"] == "POST"
    assert target["urlTemplate"].startswith("https://helpdesk.example/flowdock/actions/")
    signed_part = resolve(target["urlTemplate"].removeprefix("https://helpdesk.example")).kwargs
    assert unsign_target(signed_part["signed"]) == (Ticket, str(ticket.pk), "assign_to_me")


def test_target_urls_differ_per_object_and_action(db):
    first, second = Ticket.objects.create(subject="A"), Ticket.objects.create(subject="B")
    urls = {a["target"]["urlTemplate"] for t in (first, second) for a in actions_for(t, None)}
    assert len(urls) == 4


def test_editing_the_signed_part_of_a_target_breaks_its_signature(db):
    ticket = Ticket.objects.create(subject="A")
    url = actions_for(ticket, None)[0]["target"]["urlTemplate"]
    value = resolve(url.removeprefix("https://helpdesk.example")).kwargs["signed"]
    payload, signature = value.rsplit(":", 1)
    forged = signing.Signer(salt="elsewhere").sign_object(["testapp.ticket", "1", "delete"])
    for tampered in (payload[:-1] + "A:" + signature, forged, payload + ":" + "x" * 27):
        with pytest.raises(signing.BadSignature):
            unsign_target(tampered)


def test_condition_sees_the_user_in_context_and_hides_the_action(db):
    user = make_user(link=False)
    ticket = Ticket.objects.create(subject="Polish", assignee=user)

    assert names(actions_for(ticket, user=None)) == ["Assign to me", "Mark as solved"]
    assert names(actions_for(ticket, user=user)) == ["Mark as solved"]
    with acting_as(user):
        assert names(ticket.get_flowdock_actions()) == ["Mark as solved"]
    ticket.state = "solved"
    assert names(actions_for(ticket, user=None)) == ["Assign to me"]


def test_unsaved_objects_offer_no_update_actions():
    assert actions_for(Ticket(subject="new"), user=None) == []


def test_without_site_url_or_request_update_actions_are_left_out(db, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": None}
    assert actions_for(Ticket.objects.create(subject="x"), user=None) == []


def test_actions_reach_the_thread_json(db):
    thread = thread_state(Ticket.objects.create(subject="Polish")).as_json()
    assert names(thread["actions"]) == ["Assign to me", "Mark as solved"]


def test_get_action_finds_by_button_or_method_name():
    assert get_action(Ticket, "Assign to me").key == "assign_to_me"
    assert get_action(Ticket, "mark_as_solved").name == "Mark as solved"
    assert get_action(Ticket, "delete") is None


def test_method_accepting_agent_receives_it():
    class Thing:
        saved = False

        @flowdock_action("Wave")
        def wave(self, user, agent=None):
            self.waved_by = (user, agent["name"])

        def save(self):
            self.saved = True

    thing = Thing()
    declared_actions(Thing)["wave"].run(thing, "marty", {"name": "Marty in chat"})
    assert thing.waved_by == ("marty", "Marty in chat")
    assert thing.saved


def test_subclass_overriding_a_method_without_decorator_withdraws_the_action():
    class Base:
        @flowdock_action("Wave")
        def wave(self, user):
            pass

    class Child(Base):
        def wave(self, user):
            pass

    assert list(declared_actions(Base)) == ["wave"]
    assert declared_actions(Child) == {}


# ViewActions


def test_view_actions_option_gives_absolute_links(db, monkeypatch):
    ticket = Ticket.objects.create(subject="Polish")
    declared = Ticket.flowdock_options().declared
    monkeypatch.setitem(
        declared,
        "view_actions",
        [
            ("Open in Helpdesk", "get_absolute_url", "The ticket page"),
            ("Search", lambda t: f"https://search.example/?q={t.pk}"),
            ("Nowhere", "internal_note"),  # empty: left out
        ],
    )

    links = actions_for(ticket, None)[:2]

    assert links == [
        {
            "@type": "ViewAction",
            "name": "Open in Helpdesk",
            "url": f"https://helpdesk.example/tickets/{ticket.pk}/",
            "description": "The ticket page",
        },
        {"@type": "ViewAction", "name": "Search", "url": f"https://search.example/?q={ticket.pk}"},
    ]
    assert names(actions_for(ticket, None)[2:]) == ["Assign to me", "Mark as solved"]


def test_view_actions_method_overrides_the_option(db, monkeypatch):
    ticket = Ticket.objects.create(subject="Polish")
    monkeypatch.setattr(
        Ticket, "get_flowdock_view_actions", lambda self: [("Docs", "/docs/")], raising=False
    )
    assert actions_for(ticket, None)[0] == {
        "@type": "ViewAction",
        "name": "Docs",
        "url": "https://helpdesk.example/docs/",
    }


# Running: the happy path


@pytest.mark.django_db(transaction=True)
def test_linked_user_assigns_ticket_and_a_new_activity_by_them_is_queued(client, locmem):
    make_application()
    user = make_user()
    ticket = Ticket.objects.create(subject="Polish the flux capacitor")
    locmem.clear()
    performed = []
    action_performed.connect(lambda **kw: performed.append(kw), weak=False, dispatch_uid="t")
    try:
        response = post(client, signed(ticket, "Assign to me", agent_name="Marty in chat"))
    finally:
        action_performed.disconnect(dispatch_uid="t")

    assert response.status_code == 200, response.content
    assert response.json() == {"detail": "Assign to me: done."}
    ticket.refresh_from_db()
    assert ticket.assignee == user
    [message] = locmem
    assert message["title"] == "updated ticket"
    assert message["author"] == {"name": "marty", "email": "marty@example.com"}
    assert {"label": "Assignee", "value": "marty"} in message["thread"]["fields"]
    # The new state no longer offers "Assign to me" to the user who just took it.
    assert names(message["thread"]["actions"]) == ["Mark as solved"]
    assert Message.objects.filter(event="activity").count() == 2
    assert performed[0]["instance"] == ticket
    assert performed[0]["action"].key == "assign_to_me"
    assert performed[0]["user"] == user
    assert performed[0]["flowdock_user_id"] == "77"
    assert performed[0]["sender"] is Ticket


def test_second_action_runs_as_well(db, client):
    make_application()
    make_user()
    ticket = Ticket.objects.create(subject="Polish")
    assert post(client, signed(ticket, "Mark as solved")).status_code == 200
    ticket.refresh_from_db()
    assert ticket.state == "solved"


def test_action_endpoint_works_behind_login_required_middleware(db, client, settings):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    make_application()
    make_user()
    ticket = Ticket.objects.create(subject="Polish")
    assert post(client, signed(ticket, "Mark as solved")).status_code == 200


# Checks E020-E027


def ids(errors):
    return [e.id for e in errors]


@isolate_apps("tests.testapp")
def test_condition_that_is_not_callable_is_e020():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        title = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "title"

        @flowdock_action("Close", condition=True)
        def close(self, user):
            pass

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E020"]
    assert "Close" in errors[0].msg


@isolate_apps("tests.testapp")
def test_two_actions_with_one_name_is_e021():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        title = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "title"

        @flowdock_action("Close")
        def close(self, user):
            pass

        @flowdock_action("Close")
        def close_for_good(self, user):
            pass

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E021"]
    assert "Bad.close and testapp.Bad.close_for_good" in errors[0].msg


@isolate_apps("tests.testapp")
def test_malformed_view_actions_are_e022_and_missing_attributes_e023():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        title = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "title"
            view_actions = ["get_absolute_url", ("Open", "get_absolut_url")]

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E022", "django_flowdock.E023"]
    assert "'get_absolut_url'" in errors[1].msg


def test_update_actions_without_site_url_is_e024(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": None}
    errors = check_action_routes()
    assert ids(errors) == ["django_flowdock.E024"]
    assert "testapp.Ticket" in errors[0].msg


def test_update_actions_without_the_action_route_is_e025(settings):
    settings.ROOT_URLCONF = __name__
    errors = check_action_routes()
    assert ids(errors) == ["django_flowdock.E025"]
    assert 'include("django_flowdock.urls")' in errors[0].hint


def test_project_with_actions_passes_route_checks():
    assert check_action_routes() == []


@isolate_apps("tests.testapp")
def test_decorated_method_on_a_model_without_the_mixin_is_e026():
    class Bad(models.Model):
        class Meta:
            app_label = "testapp"

        @flowdock_action("Close")
        def close(self, user):
            pass

    assert ids(check_model(Bad)) == ["django_flowdock.E026"]


@isolate_apps("tests.testapp")
def test_action_method_that_cannot_take_the_user_is_e027():
    class Bad(FlowdockThread, models.Model):
        class Meta:
            app_label = "testapp"

        title = models.CharField(max_length=10)

        class FlowdockMeta:
            title = "title"

        @flowdock_action("Close")
        def close(self):
            pass

    errors = check_model(Bad)
    assert ids(errors) == ["django_flowdock.E027"]
    assert "def close(self, user)" in errors[0].hint
