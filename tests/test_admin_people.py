"""The admin as people read it: a delivery log that names objects, a Source form with
choices instead of raw ids and JSON, read-only captured changes, an escaped test message."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_flowdock.models import Change, Message, Source
from tests.testapp.models import Card, Project, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

LOG_URL = "/admin/django_flowdock/message/"
SOURCE_URL = "/admin/django_flowdock/source/"


def logged(source, key, **fields):
    return Message.objects.create(source=source, thread_key=key, event="activity", **fields)


def row_of(page: str, text: str) -> str:
    """The HTML of the change list row containing ``text``."""
    [row] = [row for row in re.findall(r"<tr>.*?</tr>", page, re.S) if text in row]
    return row


@pytest.fixture
def quiet_source(db):
    """An inactive source: saving cards and tickets queues it no messages, so the log
    holds only the rows a test writes."""
    return Source.objects.create(name="Helpdesk", flow_token="never-shown-token", active=False)


def test_delivery_log_names_the_object_and_links_to_its_admin_page(admin_client, quiet_source):
    card = Card.objects.create(title="Broken <b>printer</b>")
    logged(quiet_source, f"testapp.card:{card.pk}")
    page = admin_client.get(LOG_URL).content.decode()
    assert f'<a href="/admin/testapp/card/{card.pk}/change/"' in page
    assert "Broken &lt;b&gt;printer&lt;/b&gt;" in page


def test_delivery_log_shows_an_unregistered_object_without_a_link(admin_client, quiet_source):
    ticket = Ticket.objects.create(subject="Printer on fire")
    logged(quiet_source, f"testapp.ticket:{ticket.pk}")
    row = row_of(admin_client.get(LOG_URL).content.decode(), "Printer on fire")
    assert "/admin/testapp/ticket/" not in row


def test_delivery_log_marks_objects_that_are_gone(admin_client, quiet_source):
    card = Card.objects.create(title="Short-lived")
    pk = card.pk
    logged(quiet_source, f"testapp.card:{pk}")
    card.delete()
    row = row_of(admin_client.get(LOG_URL).content.decode(), f"testapp.card:{pk}")
    assert f"Card {pk}" in row
    assert "(deleted)" in row


def test_delivery_log_looks_up_a_pages_objects_one_query_per_model(admin_client, quiet_source):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(LOG_URL).status_code == 200
        return len(captured)

    for title in ("one", "two"):
        logged(quiet_source, f"testapp.card:{Card.objects.create(title=title).pk}")
    logged(quiet_source, f"testapp.ticket:{Ticket.objects.create(subject='t').pk}")
    few = queries_for_page()
    for n in range(10):
        logged(quiet_source, f"testapp.card:{Card.objects.create(title=f'more {n}').pk}")
        logged(quiet_source, f"testapp.ticket:{Ticket.objects.create(subject=f'm {n}').pk}")
    assert queries_for_page() == few


def test_delivery_log_shows_state_attempts_short_error_repairs_and_times(
    admin_client, quiet_source
):
    long_error = "Flowdock said no: " + "the thread body is far too long. " * 10
    logged(
        quiet_source,
        "testapp.card:77",
        state="failed",
        attempts=8,
        status_code=400,
        last_error=long_error,
        repairs="title cut to 255 characters",
    )
    row = row_of(admin_client.get(LOG_URL).content.decode(), "testapp.card:77")
    assert 'style="color:#ba2121">failed</strong>' in row
    assert "8 attempts" in row
    assert "400 Flowdock said no: the thread body" in row
    assert long_error not in row.replace(f'title="{long_error}"', "")  # shown cut, full on hover
    assert 'title="title cut to 255 characters">payload repaired</span>' in row
    assert '<td class="field-sent">—</td>' in row
    header = admin_client.get(LOG_URL).content.decode().split("<tbody>")[0]
    for column in ("Created", "Object", "Source", "State", "Last error", "Sent"):
        assert f">{column}</a>" in header or f">{column}</span>" in header, column


def test_a_pending_message_shows_when_it_is_tried_next(admin_client, quiet_source):
    logged(quiet_source, "testapp.card:5", next_attempt_at=timezone.now() + timedelta(minutes=3))
    row = row_of(admin_client.get(LOG_URL).content.decode(), "testapp.card:5")
    assert "next:<br>" in row
    assert "color:#b06c00" in row


def test_delivery_log_filters_by_model_source_and_date(admin_client, quiet_source):
    other = Source.objects.create(name="Ops", flow_token="x", active=False)
    logged(quiet_source, "testapp.card:1")
    logged(other, "testapp.ticket:2", created_at=timezone.now() - timedelta(days=40))
    page = admin_client.get(f"{LOG_URL}?model=testapp.card").content.decode()
    assert "testapp.card:1" in page and "testapp.ticket:2" not in page
    page = admin_client.get(f"{LOG_URL}?source__id__exact={other.pk}").content.decode()
    assert "testapp.ticket:2" in page and "testapp.card:1" not in page
    since = str(timezone.now() - timedelta(days=7))
    page = admin_client.get(LOG_URL, {"created_at__gte": since}).content.decode()
    assert "testapp.card:1" in page and "testapp.ticket:2" not in page
    sidebar = admin_client.get(LOG_URL).content.decode()
    for title in ("By state", "By source", "By item", "By created"):
        assert title in sidebar, title


def test_delivery_log_searches_by_uuid_object_id_and_thread_key(admin_client, quiet_source):
    five = logged(quiet_source, "testapp.card:5")
    logged(quiet_source, "testapp.card:15")
    logged(quiet_source, "testapp.ticket:6")
    page = admin_client.get(LOG_URL, {"q": str(five.uuid)}).content.decode()
    assert "testapp.card:5" in page and "testapp.ticket:6" not in page
    page = admin_client.get(LOG_URL, {"q": "5"}).content.decode()
    assert "testapp.card:5" in page and "testapp.card:15" not in page
    page = admin_client.get(LOG_URL, {"q": "testapp.ticket:6"}).content.decode()
    assert "testapp.ticket:6" in page and "testapp.card:5" not in page
    page = admin_client.get(LOG_URL, {"q": str(uuid.uuid4())}).content.decode()
    assert "0 messages" in page


def test_message_page_wraps_the_payload_within_the_page(admin_client, quiet_source):
    message = logged(
        quiet_source, "testapp.card:1", payload={"thread": {"body": "<p>" + "x" * 3000 + "</p>"}}
    )
    page = admin_client.get(f"{LOG_URL}{message.pk}/change/").content.decode()
    assert '<pre class="flowdock-payload">' in page
    assert "&lt;p&gt;xxx" in page
    assert "white-space: pre-wrap" in page and "overflow-wrap: anywhere" in page
    assert 'name="_save"' not in page


def test_captured_changes_are_read_only_and_show_their_error(admin_client):
    change = Change.objects.create(
        model="testapp.card", object_pk="3", event="updated", error="Could not render: boom"
    )
    page = admin_client.get("/admin/django_flowdock/change/").content.decode()
    assert "Could not render: boom" in page
    assert admin_client.get("/admin/django_flowdock/change/add/").status_code == 403
    url = f"/admin/django_flowdock/change/{change.pk}/change/"
    assert 'name="_save"' not in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"error": ""}).status_code == 403
    change.refresh_from_db()
    assert change.error == "Could not render: boom"


def source_form(**fields) -> dict:
    return {"name": "Helpdesk", "flow_token": "", "flow_name": "", **fields}


def test_source_form_offers_the_scope_models_objects_not_every_content_type(
    admin_client, quiet_source
):
    acme = Project.objects.create(name="Acme")
    page = admin_client.get(f"{SOURCE_URL}{quiet_source.pk}/change/").content.decode()
    project_type = ContentType.objects.get_for_model(Project)
    assert f'<option value="{project_type.pk}:{acme.pk}">Acme</option>' in page
    assert "Everything (no scope)" in page
    for unrelated in ("session", "log entry", "permission", "content type"):
        assert f">{unrelated}<" not in page.lower()
    assert 'name="scope_object_id"' not in page
    assert "never-shown-token" not in page


def test_source_form_saves_the_chosen_scope_items_and_events(admin_client, quiet_source):
    acme = Project.objects.create(name="Acme")
    project_type = ContentType.objects.get_for_model(Project)
    response = admin_client.post(
        f"{SOURCE_URL}{quiet_source.pk}/change/",
        source_form(
            scope_object=f"{project_type.pk}:{acme.pk}",
            models=["testapp.ticket"],
            events=["created", "commented"],
        ),
    )
    assert response.status_code == 302
    quiet_source.refresh_from_db()
    assert quiet_source.scope == acme
    assert quiet_source.settings == {
        "models": ["testapp.ticket"],
        "events": ["created", "commented"],
    }
    assert quiet_source.flow_token == "never-shown-token"
    assert quiet_source.accepts("testapp.ticket", "created")
    assert not quiet_source.accepts("testapp.card", "created")


def test_source_form_shows_settings_as_ticked_boxes_and_keeps_what_it_does_not_offer(
    admin_client, quiet_source
):
    quiet_source.settings = {"models": ["testapp.card", "gone.model"], "events": ["deleted"]}
    quiet_source.save()
    page = admin_client.get(f"{SOURCE_URL}{quiet_source.pk}/change/").content.decode()
    assert re.search(r'<input type="checkbox" name="models" value="testapp.card"[^>]*checked', page)
    assert re.search(r'<input type="checkbox" name="events" value="deleted"[^>]*checked', page)
    assert not re.search(r'name="events" value="created"[^>]*checked', page)
    assert "gone.model (not offered any more)" in page
    assert 'name="settings"' not in page
    admin_client.post(
        f"{SOURCE_URL}{quiet_source.pk}/change/",
        source_form(models=["testapp.card", "gone.model"], events=["deleted", "updated"]),
    )
    quiet_source.refresh_from_db()
    assert quiet_source.settings == {
        "models": ["testapp.card", "gone.model"],
        "events": ["deleted", "updated"],
    }


def test_unticking_everything_receives_everything_and_keeps_other_keys(admin_client, quiet_source):
    quiet_source.settings = {"models": ["testapp.card"], "events": ["created"], "note": "kept"}
    quiet_source.save()
    admin_client.post(f"{SOURCE_URL}{quiet_source.pk}/change/", source_form())
    quiet_source.refresh_from_db()
    assert quiet_source.settings == {"note": "kept"}
    assert quiet_source.accepts("testapp.incident", "deleted")


def test_an_unknown_event_is_refused_naming_the_field(admin_client, quiet_source):
    response = admin_client.post(
        f"{SOURCE_URL}{quiet_source.pk}/change/", source_form(events=["exploded"])
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert re.search(r"field-events.*?Select a valid choice\. exploded", page, re.S)
    quiet_source.refresh_from_db()
    assert quiet_source.settings == {}


@pytest.fixture
def many_projects(monkeypatch):
    """More projects than one select offers: the scope is given by type and id."""
    monkeypatch.setattr("django_flowdock.admin.SCOPE_CHOICES_LIMIT", 1)
    return [Project.objects.create(name=name) for name in ("Acme", "Globex")]


def test_with_many_scope_objects_the_scope_is_a_type_and_a_validated_id(
    admin_client, quiet_source, many_projects
):
    page = admin_client.get(f"{SOURCE_URL}{quiet_source.pk}/change/").content.decode()
    project_type = ContentType.objects.get_for_model(Project)
    assert 'name="scope_object_id"' in page
    [scope_select] = re.findall(r'<select name="scope_content_type".*?</select>', page, re.S)
    assert re.findall(r'<option value="(\d+)"', scope_select) == [str(project_type.pk)]
    globex = many_projects[1]
    response = admin_client.post(
        f"{SOURCE_URL}{quiet_source.pk}/change/",
        source_form(scope_content_type=project_type.pk, scope_object_id=f" {globex.pk} "),
    )
    assert response.status_code == 302
    quiet_source.refresh_from_db()
    assert quiet_source.scope == globex


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"scope_object_id": "999999"},
            "scope_object_id",
            "No project has the id “999999”. Enter the id of an existing project",
        ),
        ({"scope_object_id": "abc"}, "scope_object_id", "No project has the id “abc”"),
        (
            {"scope_object_id": ""},
            "scope_object_id",
            "Enter the id of the project this source is scoped to, or empty Scope type",
        ),
        (
            {"scope_content_type": "", "scope_object_id": "1"},
            "scope_content_type",
            "Pick the type of the object with id “1”, or empty Scope ID.",
        ),
    ],
)
def test_a_bad_scope_id_is_refused_naming_the_field_and_the_fix(
    admin_client, quiet_source, many_projects, fields, field, message
):
    project_type = ContentType.objects.get_for_model(Project)
    data = source_form(**{"scope_content_type": project_type.pk, **fields})
    response = admin_client.post(f"{SOURCE_URL}{quiet_source.pk}/change/", data)
    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(rf"field-{field}.*?{re.escape(message)}", page, re.S), page
    quiet_source.refresh_from_db()
    assert quiet_source.scope_content_type_id is None


def test_a_scope_type_outside_the_scope_models_is_kept_and_edited_by_id(admin_client, quiet_source):
    card = Card.objects.create(title="Set in code")
    quiet_source.scope = card
    quiet_source.save()
    page = admin_client.get(f"{SOURCE_URL}{quiet_source.pk}/change/").content.decode()
    assert f'value="{card.pk}"' in page and 'name="scope_object_id"' in page
    card_type = ContentType.objects.get_for_model(Card)
    response = admin_client.post(
        f"{SOURCE_URL}{quiet_source.pk}/change/",
        source_form(scope_content_type=card_type.pk, scope_object_id=card.pk),
    )
    assert response.status_code == 302
    quiet_source.refresh_from_db()
    assert quiet_source.scope == card


def test_test_message_escapes_the_source_name(admin_client, sandbox):
    source = Source.objects.create(name="<b>Ops</b> & co", flow_token=sandbox.flow_token)
    response = admin_client.post(
        SOURCE_URL, {"action": "send_test_message", "_selected_action": [source.pk]}, follow=True
    )
    assert "test message sent" in response.content.decode()
    [thread] = sandbox.threads()
    assert thread["title"] == "Test message for source “&lt;b&gt;Ops&lt;/b&gt; &amp; co”"
