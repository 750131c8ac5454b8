"""Messy data never fails a save: what reaches Flowdock is repaired, valid and current.

Users with 250-character names and ``ops@intranet`` e-mails, empty titles, 1 MB
bodies, control characters, emoji, right-to-left text and HTML, saved through the
admin and through the ORM; checked in the sandbox over real HTTP. Texts too long for
the API's limits are cut or summarised, and a missing value is left out.
"""

import logging

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from django_flowdock.context import acting_as
from django_flowdock.models import Change, Message
from django_flowdock.testing import wait_for_delivery
from django_flowdock.threads.schema import BODY_LIMIT, NAME_LIMIT, TITLE_LIMIT, validate_message
from tests.testapp.models import Card, CardComment, Reply, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

LONG_NAME = ("Maximiliana-" * 11)[:125], ("Vandersloot-" * 11)[:124]  # 250 with the space
MESSY = "Ünïcödé 🙂🔥 שלום עולם مرحبا <b>bold</b> <script>alert(1)</script> & \u202eevil"
CONTROL = "bell\x07 escape\x1b backspace\x08 delete\x7f"
MB_BODY = ("Line of text with <i>markup</i> & 🙂\n" * 30_000)[:1_000_000]


@pytest.fixture
def ops_user():
    first, last = LONG_NAME
    return get_user_model().objects.create_superuser(
        "ops", "ops@intranet", "pw", first_name=first, last_name=last
    )


def assert_valid_and_repaired(message):
    """A message as the sandbox stored it: within the API's limits, no control chars."""
    assert len(message["author"]["name"]) <= NAME_LIMIT
    assert message["title"].strip()
    assert 0 < len(message["thread"]["title"]) <= TITLE_LIMIT
    body = message["body"] or ""
    assert len(body) <= BODY_LIMIT
    for text in (message["title"], body, message["thread"]["title"]):
        assert not any(ord(c) < 32 and c not in "\t\n\r" for c in text)


def test_admin_save_by_a_user_with_a_250_character_name_and_intranet_email(
    sandbox, source, ops_user, client, caplog
):
    client.force_login(ops_user)
    with caplog.at_level(logging.WARNING, logger="django_flowdock.delivery"):
        response = client.post(
            "/admin/testapp/card/add/",
            {"title": "", "notes": MESSY + "\n" + MB_BODY, "kind": "bug", "estimate": "1.5"},
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        wait_for_delivery()

    card = Card.objects.get()
    [created] = sandbox.messages()
    assert_valid_and_repaired(created)
    assert created["thread"]["title"] == f"Card #{card.pk}"
    assert created["author"]["name"] == f"{LONG_NAME[0]} {LONG_NAME[1]}"[: NAME_LIMIT - 1] + "…"
    assert not created["author"]["email"]
    assert "🙂🔥 שלום עולם مرحبا" in created["thread"]["body"]
    assert "<script>" not in created["thread"]["body"]

    message = Message.objects.get()
    assert message.state == Message.State.SENT
    assert "author.name: cut from 250 to 100" in message.repairs
    assert "author.email: 'ops@intranet' is not valid, dropped" in message.repairs
    assert f"thread.title: empty, set to 'Card #{card.pk}'" in message.repairs
    assert any(
        r.levelno == logging.WARNING and "was repaired" in r.getMessage() for r in caplog.records
    )


def test_admin_edit_of_a_messy_object_sends_its_current_state(sandbox, source, ops_user, client):
    card = Card.objects.create(title="", notes=MB_BODY)
    wait_for_delivery()
    client.force_login(ops_user)

    response = client.post(
        f"/admin/testapp/card/{card.pk}/change/",
        {"title": MESSY, "notes": MB_BODY + "more", "kind": "feature"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    _, updated = sandbox.messages()
    assert_valid_and_repaired(updated)
    assert updated["title"] == "updated card"
    assert "Ünïcödé 🙂🔥 שלום עולם" in updated["thread"]["title"]
    assert "<script>" not in updated["thread"]["title"]
    assert updated["thread"]["status"]["value"] == "Feature request"
    assert "Notes changed" in updated["body"]
    assert [m.state for m in Message.objects.order_by("pk")] == [Message.State.SENT] * 2


def test_orm_saves_acting_as_a_messy_user_are_repaired_not_refused(
    sandbox, source, ops_user, caplog
):
    nul = "" if connection.vendor == "postgresql" else "nul\x00"  # PostgreSQL refuses NUL
    with caplog.at_level(logging.WARNING, logger="django_flowdock.delivery"), acting_as(ops_user):
        card = Card.objects.create(title=CONTROL + nul, notes=CONTROL + MESSY + nul)
        wait_for_delivery()
        card.title = "   "
        card.notes = MB_BODY
        card.save()
        wait_for_delivery()
        CardComment.objects.create(card=card, text=nul + CONTROL + MB_BODY)
        wait_for_delivery()

    messages = sandbox.messages()
    assert [m["event"] for m in messages] == ["activity", "activity", "discussion"]
    for message in messages:
        assert_valid_and_repaired(message)
        assert not message["author"]["email"]
    created, updated, comment = messages
    assert created["thread"]["title"] == "bell escape backspace delete" + nul.replace("\x00", "")
    assert updated["thread"]["title"] == f"Card #{card.pk}"
    assert comment["thread"]["title"] == f"Card #{card.pk}"
    assert comment["body"].startswith("nulbell escape" if nul else "bell escape")

    rows = list(Message.objects.order_by("pk"))
    assert all(m.state == Message.State.SENT and m.repairs for m in rows)
    assert "removed control characters" in rows[0].repairs
    for row in rows:
        validate_message(row.payload, "testapp.Card")
    repaired = [r for r in caplog.records if "was repaired" in r.getMessage()]
    assert len(repaired) == 3
    assert {r.levelno for r in repaired} == {logging.WARNING}


def test_only_the_latest_state_reaches_the_sandbox_after_a_burst_of_messy_saves(sandbox, source):
    with transaction.atomic():
        card = Card.objects.create(title="")
    wait_for_delivery()
    for title in ("", MESSY, CONTROL, "Final title 🙂"):
        card.title = title
        card.save()
    wait_for_delivery()

    messages = sandbox.messages()
    assert messages[-1]["thread"]["title"] == "Final title 🙂"
    for message in messages:
        assert_valid_and_repaired(message)


@pytest.fixture
def title_raises_for_boom(monkeypatch):
    def get_flowdock_title(self):
        if "boom" in self.title:
            raise RuntimeError("title service down")
        return self.title

    monkeypatch.setattr(Card, "get_flowdock_title", get_flowdock_title, raising=False)


def test_a_title_method_that_raises_fails_that_message_alone(
    sandbox, source, title_raises_for_boom
):
    with transaction.atomic():
        first = Card.objects.create(title="Fine before")
    boom = Card.objects.create(title="boom")
    after = Card.objects.create(title="Fine after")
    wait_for_delivery()

    assert Card.objects.count() == 3
    sent = sandbox.messages()
    assert [m["external_thread_id"] for m in sent] == [
        f"testapp.card:{first.pk}",
        f"testapp.card:{after.pk}",
    ]
    failed = Message.objects.get(thread_key=f"testapp.card:{boom.pk}")
    assert failed.state == Message.State.FAILED
    assert "Traceback" in failed.last_error
    assert "RuntimeError: title service down" in failed.last_error


def test_a_title_method_that_raises_on_update_keeps_the_traceback_and_later_changes_go_out(
    sandbox, source, title_raises_for_boom
):
    card = Card.objects.create(title="Fine")
    wait_for_delivery()
    card.title = "boom"
    card.save()
    wait_for_delivery()
    card.title = "Fine again"
    card.save()
    wait_for_delivery()

    assert Card.objects.get().title == "Fine again"
    errors = [m.last_error for m in Message.objects.filter(state=Message.State.FAILED)]
    errors += list(Change.objects.exclude(error="").values_list("error", flat=True))
    assert len(errors) == 1
    assert "RuntimeError: title service down" in errors[0]
    assert [m["thread"]["title"] for m in sandbox.messages()] == ["Fine", "Fine again"]


def test_long_comment_with_many_lines_is_cut_to_fit_instead_of_failing_the_save(
    locmem, hand_source
):
    ticket = Ticket.objects.create(subject="Polish")
    text = "a & b <c>\n" * 1000  # 10,000 characters that grow when escaped
    Reply.objects.create(ticket=ticket, text=text)
    body = locmem[-1]["body"]
    assert len(body) <= 8096
    assert body.startswith("a &amp; b &lt;c&gt;<br>")


def test_long_description_that_grows_when_escaped_still_fits_the_thread_body(locmem, hand_source):
    Ticket.objects.create(subject="Polish", description="<&>\n" * 3000)
    assert len(locmem[-1]["thread"]["body"]) <= 8000


def test_missing_status_leaves_status_out_instead_of_failing_the_save(
    locmem, hand_source, monkeypatch
):
    monkeypatch.setattr(Ticket, "get_flowdock_status", lambda self: None, raising=False)
    Ticket.objects.create(subject="Polish")
    assert "status" not in locmem[-1]["thread"]


def test_update_whose_changes_are_too_long_to_quote_is_summarised(locmem, hand_source, monkeypatch):
    monkeypatch.setattr(Ticket, "get_flowdock_title", lambda self: self.subject * 30, raising=False)
    ticket = Ticket.objects.create(subject="a" * 200)
    ticket.subject = "b" * 200
    ticket.save()
    assert locmem[-1]["body"] == "<ul><li>Title changed</li></ul>"
