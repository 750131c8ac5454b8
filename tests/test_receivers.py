"""Saves, deletes and comments become the right messages, written with the change."""

import pytest
from django.db import transaction

from django_flowdock.models import Change, Message, Source
from tests.testapp.models import Project, Reply, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def titles(outbox):
    return [m["title"] for m in outbox]


def bodies(outbox):
    return [m.get("body") for m in outbox]


def test_create_sends_one_activity_with_full_state(locmem, hand_source):
    Ticket.objects.create(subject="Polish", description="<script>x</script>")
    assert titles(locmem) == ["created ticket"]
    message = locmem[0]
    assert message["flow_token"] == "token-1"
    assert message["thread"]["body"] == "&lt;script&gt;x&lt;/script&gt;"
    assert message["thread"]["status"] == {"value": "open", "color": "green"}
    assert message["uuid"]


def test_update_says_what_changed_old_to_new(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    ticket.state, ticket.priority = "solved", "high"
    ticket.save()
    assert titles(locmem) == ["created ticket", "updated ticket"]
    assert locmem[1]["body"] == (
        "<ul><li>Status: open → solved</li><li>Priority: normal → high</li></ul>"
    )
    assert locmem[1]["thread"]["status"] == {"value": "solved", "color": "grey"}


def test_body_change_is_summarised_not_quoted(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish", description="old text")
    ticket.description = "new text"
    ticket.save()
    assert locmem[1]["body"] == "<ul><li>Description changed</li></ul>"


def test_saves_that_change_nothing_shown_send_nothing(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    ticket.save()
    loaded = Ticket.objects.get(pk=ticket.pk)
    loaded.internal_note = "not mapped"
    loaded.save()
    assert titles(locmem) == ["created ticket"]


def test_foreign_key_change_is_described_by_display_values(locmem, hand_source):
    old, new = Project.objects.create(name="Apollo"), Project.objects.create(name="Gemini")
    ticket = Ticket.objects.create(subject="Polish", project=old)
    ticket = Ticket.objects.get(pk=ticket.pk)
    ticket.project = new
    ticket.save()
    assert "<li>Project: Apollo → Gemini</li>" in locmem[1]["body"]


def test_delete_sends_last_state(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish", description="Dusty", state="solved")
    ticket.delete()
    assert titles(locmem) == ["created ticket", "deleted ticket"]
    # The item's last title and body; no status, link or actions of the gone item.
    assert locmem[1]["thread"] == {
        "title": "Polish",
        "body": "Dusty",
        "fields": [{"label": "Priority", "value": "normal"}],
    }
    assert locmem[1]["external_thread_id"] == locmem[0]["external_thread_id"]


def test_reply_sends_discussion_in_the_same_thread(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    reply = Reply.objects.create(ticket=ticket, text="On it")
    reply.text = "edited"
    reply.save()
    assert titles(locmem) == ["created ticket", "commented"]
    assert locmem[1]["event"] == "discussion"
    assert locmem[1]["body"] == "On it"
    assert locmem[1]["external_thread_id"] == f"testapp.ticket:{ticket.pk}"


def test_rolled_back_change_sends_nothing_and_leaves_no_row(locmem, hand_source):
    with pytest.raises(RuntimeError), transaction.atomic():
        Ticket.objects.create(subject="Never happened")
        raise RuntimeError
    assert locmem == []
    assert not Message.objects.exists()


def test_messages_wait_for_the_commit(locmem, hand_source):
    with transaction.atomic():
        Ticket.objects.create(subject="Polish")
        assert locmem == []
        assert Change.objects.filter(fanned_out=False).count() == 1
    assert titles(locmem) == ["created ticket"]


def test_scoped_source_receives_only_its_projects_items(locmem, hand_source):
    apollo, gemini = Project.objects.create(name="Apollo"), Project.objects.create(name="Gemini")
    Source.objects.create(name="Apollo flow", flow_token="apollo-token", scope=apollo)
    Ticket.objects.create(subject="A", project=apollo)
    Ticket.objects.create(subject="G", project=gemini)
    received = [(m["flow_token"], m["thread"]["title"]) for m in locmem]
    assert sorted(received) == [("apollo-token", "A"), ("token-1", "A"), ("token-1", "G")]


def test_source_settings_filter_events(locmem, hand_source):
    hand_source.settings = {"events": ["created"]}
    hand_source.save()
    ticket = Ticket.objects.create(subject="Polish")
    ticket.state = "solved"
    ticket.save()
    assert titles(locmem) == ["created ticket"]


def test_inactive_sources_receive_nothing(locmem, hand_source):
    hand_source.active = False
    hand_source.save()
    Ticket.objects.create(subject="Polish")
    assert locmem == []


def test_request_user_is_the_author(client, django_user_model, locmem, hand_source):
    user = django_user_model.objects.create_user(
        "marty", email="marty@example.com", first_name="Marty", last_name="McFly"
    )
    ticket = Ticket.objects.create(subject="Polish")
    client.force_login(user)
    response = client.post(f"/tickets/{ticket.pk}/solve/")
    assert response.status_code == 204
    assert locmem[-1]["author"] == {"name": "Marty McFly", "email": "marty@example.com"}
    assert locmem[-1]["title"] == "updated ticket"


def test_fixture_loading_sends_nothing(locmem, hand_source):
    from django.core import serializers

    data = '[{"model": "testapp.ticket", "pk": 7, "fields": {"subject": "Loaded"}}]'
    for obj in serializers.deserialize("json", data):
        obj.save()
    assert locmem == []


def test_testcase_mixin_collects_messages_on_commit():
    from django.test import TestCase

    from django_flowdock.testing import FlowdockTestMixin

    class UserTests(FlowdockTestMixin, TestCase):
        def test_it(self):
            Source.objects.create(name="Helpdesk", flow_token="t")
            with self.captureOnCommitCallbacks(execute=True):
                Ticket.objects.create(subject="Polish")
            assert [m["title"] for m in self.flowdock_outbox] == ["created ticket"]

    result = UserTests("test_it").run()
    assert result.wasSuccessful(), result.errors + result.failures


def test_a_change_whose_capture_cannot_be_written_is_not_committed(hand_source):
    from django.db import DatabaseError, connection

    def refuse_outbox_inserts(execute, sql, params, many, context):
        if sql.startswith("INSERT") and Change._meta.db_table in sql:
            raise DatabaseError("outbox unavailable")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_outbox_inserts), pytest.raises(DatabaseError):
        Ticket.objects.create(subject="Never half-saved")
    assert not Ticket.objects.exists()


# A change is measured against the state last loaded or saved, field by field.


def test_refresh_from_db_is_the_new_baseline_for_changes(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    Ticket.objects.filter(pk=ticket.pk).update(state="solved")  # another process
    ticket.refresh_from_db()
    ticket.priority = "high"
    ticket.save()
    # The state change was not made by this save: it must not be reported again.
    assert bodies(locmem)[-1] == "<ul><li>Priority: normal → high</li></ul>"


def test_change_to_a_deferred_field_is_reported(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    loaded = Ticket.objects.only("pk", "subject").get(pk=ticket.pk)
    loaded.state = "solved"
    loaded.save()
    assert [m["title"] for m in locmem] == ["created ticket", "updated ticket"]
    assert bodies(locmem)[-1] == "<ul><li>Status: open → solved</li></ul>"


def test_deferred_field_loaded_then_changed_is_reported(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    loaded = Ticket.objects.only("pk", "subject").get(pk=ticket.pk)
    assert loaded.state == "open"  # loads the deferred field
    loaded.state = "solved"
    loaded.save()
    assert bodies(locmem)[-1] == "<ul><li>Status: open → solved</li></ul>"


def test_update_fields_reports_and_shows_only_what_was_saved(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    ticket.state, ticket.subject = "solved", "Not saved"
    ticket.save(update_fields=["state"])
    assert bodies(locmem)[-1] == "<ul><li>Status: open → solved</li></ul>"
    assert locmem[-1]["thread"]["title"] == "Polish"
    # The subject is still unsaved: saving it later is a change.
    ticket.save()
    assert bodies(locmem)[-1] == "<ul><li>Title: Polish → Not saved</li></ul>"
