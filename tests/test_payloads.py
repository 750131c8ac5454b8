"""Objects become thread and message JSON exactly as the API describes them."""

import pytest
from django.utils.safestring import mark_safe

from django_flowdock.exceptions import FlowdockRenderError
from django_flowdock.threads.render import activity_message, discussion_message, thread_state
from django_flowdock.threads.schema import repair, validate_message
from tests.testapp.models import Incident, Project, Reply, Ticket


def ticket(**kwargs):
    defaults = {"pk": 42, "subject": "Polish the flux capacitor", "description": "Dusty."}
    return Ticket(**{**defaults, **kwargs})


def test_thread_carries_title_body_status_fields_and_absolute_url():
    thread = thread_state(ticket(project=Project(name="BTTF"))).as_json()
    # The Ticket's UpdateActions are covered in test_actions.py.
    assert [action["name"] for action in thread.pop("actions")] == [
        "Assign to me",
        "Mark as solved",
    ]
    assert thread == {
        "title": "Polish the flux capacitor",
        "body": "Dusty.",
        "external_url": "https://helpdesk.example/tickets/42/",
        "status": {"value": "open", "color": "green"},
        "fields": [
            {"label": "Priority", "value": "normal"},
            # Assignee is empty: left out rather than shown as an empty row.
            {"label": "Project", "value": "BTTF"},
        ],
    }


def test_user_text_is_escaped_in_title_body_and_fields():
    thread = thread_state(
        ticket(
            subject="<b>bold</b>",
            description="<script>alert(1)</script>\nline two",
            priority="<i>x</i>",
        )
    ).as_json()
    assert thread["title"] == "&lt;b&gt;bold&lt;/b&gt;"
    assert thread["body"] == "&lt;script&gt;alert(1)&lt;/script&gt;<br>line two"
    assert thread["fields"][0]["value"] == "&lt;i&gt;x&lt;/i&gt;"


def test_long_values_are_cut_to_limits():
    thread = thread_state(ticket(subject="x" * 1000, description="y" * 20000)).as_json()
    assert len(thread["title"]) == 255
    assert len(thread["body"]) == 8000


def test_choices_are_shown_by_display_value_and_methods_override_options():
    thread = thread_state(Incident(pk=1, name="Disk full", severity="high")).as_json()
    assert thread["fields"] == [{"label": "Severity", "value": "High — page someone"}]
    assert thread["status"] == {"value": "firing", "color": "red"}


def test_status_without_a_mapped_colour_is_grey():
    assert thread_state(ticket(state="escalated")).as_json()["status"]["color"] == "grey"


def test_activity_message_has_event_author_title_and_thread_id():
    message = activity_message(ticket(), "created")
    assert message["event"] == "activity"
    assert message["title"] == "created ticket"
    assert message["author"] == {"name": "Django"}
    assert message["external_thread_id"] == "testapp.ticket:42"
    assert "body" not in message


def test_model_author_option_is_used_outside_requests():
    assert activity_message(Incident(pk=1, name="x"), "created")["author"] == {
        "name": "Monitoring bot"
    }


def test_discussion_carries_escaped_comment_and_thread_state():
    parent = ticket()
    message = discussion_message(Reply(ticket=parent, text="I <3 this\nreally"), parent)
    assert message["event"] == "discussion"
    assert message["title"] == "commented"
    assert message["body"] == "I &lt;3 this<br>really"
    assert message["thread"]["title"] == "Polish the flux capacitor"
    assert message["external_thread_id"] == "testapp.ticket:42"


def test_invalid_status_colour_is_repaired_to_grey_and_the_repair_named(monkeypatch):
    monkeypatch.setattr(
        Incident, "get_flowdock_status", lambda self: {"value": "x", "color": "pink"}
    )
    message = activity_message(Incident(pk=1, name="x"), "created")
    repaired, repairs = repair(message, title="Incident #1", author="Django")
    assert repaired["thread"]["status"] == {"value": "x", "color": "grey"}
    assert repairs == ["thread.status.color: 'pink' is not a colour, grey"]
    assert validate_message(repaired, "testapp.Incident") is repaired


def test_markup_other_than_links_in_a_safe_title_names_model_and_option(monkeypatch):
    monkeypatch.setattr(
        Ticket, "get_flowdock_title", lambda self: mark_safe("<b>x</b>"), raising=False
    )
    message = activity_message(ticket(), "created")
    with pytest.raises(FlowdockRenderError, match="only <a> tags are allowed") as excinfo:
        validate_message(message, "testapp.Ticket")
    assert "thread.title" in str(excinfo.value)
    assert "(from FlowdockMeta title)" in str(excinfo.value)


def test_safe_links_in_titles_are_kept(monkeypatch):
    link = mark_safe('<a href="https://x.example">x</a>')
    monkeypatch.setattr(Ticket, "get_flowdock_title", lambda self: link, raising=False)
    assert activity_message(ticket(), "created")["thread"]["title"] == str(link)


def test_relative_url_without_site_url_or_request_is_left_out(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": None}
    assert "external_url" not in thread_state(ticket()).as_json()


def test_a_proxy_model_instance_is_the_same_thread_as_its_concrete_model():
    from django.test.utils import isolate_apps

    with isolate_apps("tests.testapp"):

        class OpenTicket(Ticket):
            class Meta:
                proxy = True
                app_label = "testapp"

    assert OpenTicket(pk=7).get_flowdock_thread_id() == Ticket(pk=7).get_flowdock_thread_id()


@pytest.mark.django_db(transaction=True)
def test_lazily_translated_default_author_is_sent_as_text(settings, flowdock_outbox):
    from django.utils.translation import gettext_lazy

    from django_flowdock.models import Source

    settings.FLOWDOCK = {**settings.FLOWDOCK, "DEFAULT_AUTHOR": {"name": gettext_lazy("Robot")}}
    Source.objects.create(name="Helpdesk", flow_token="t")
    Ticket.objects.create(subject="Polish")
    assert flowdock_outbox[0]["author"] == {"name": "Robot"}
