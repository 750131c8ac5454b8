"""Every field type is shown for people, and a change to the tags alone is an update.

The values are read at delivery (threads/display.py): many-to-many and reverse
relations as their objects' ``str()`` sorted, choices by label, foreign keys by
``str()``, booleans as yes/no, dates localised in the current time zone, decimals
localised with their field's decimal places, files by name; empty fields are left out
of the thread. What reaches the sandbox is checked over real HTTP.
"""

import datetime
from decimal import Decimal

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from django_flowdock.testing import wait_for_delivery
from django_flowdock.threads.display import read_path, text
from tests.testapp.models import Card, CardComment, Project, Tag

pytestmark = pytest.mark.django_db(transaction=True)

DUE = datetime.datetime(2026, 1, 2, 10, 30, tzinfo=datetime.UTC)


def fields_of(message):
    return {f["label"]: f["value"] for f in message["thread"]["fields"]}


def activities(sandbox):
    return sandbox.messages(event="activity")


@pytest.fixture
def tags():
    return {name: Tag.objects.create(name=name) for name in ("zeta", "alpha", "beta")}


@pytest.fixture
def card(sandbox, source, tags):
    with transaction.atomic():
        card = Card.objects.create(title="Printer on fire")
        card.tags.add(tags["zeta"], tags["alpha"])
    wait_for_delivery()
    return card


# -- display.text, the one function every option's value goes through ---------------


def test_many_to_many_is_shown_as_its_objects_sorted(tags):
    with transaction.atomic():
        card = Card.objects.create(title="x")
        card.tags.add(tags["zeta"], tags["alpha"], tags["beta"])
        assert text(card.tags) == "alpha, beta, zeta"
        assert text(Card.objects.create(title="y").tags) == ""


def test_datetime_is_shown_in_the_current_time_zone():
    with timezone.override("Europe/Helsinki"):
        assert text(DUE) == "Jan. 2, 2026, 12:30 p.m."
    with timezone.override("America/New_York"):
        assert text(DUE) == "Jan. 2, 2026, 5:30 a.m."


def test_dates_booleans_decimals_files_and_none_are_shown_for_people():
    card = Card(attachment="reports/q3.pdf")
    assert text(datetime.date(2026, 1, 2)) == "Jan. 2, 2026"
    assert (text(True), text(False)) == ("yes", "no")
    assert text(Decimal("1234.50")) == "1234.50"
    assert text(card.attachment) == "reports/q3.pdf"
    assert text(Card().attachment) == ""
    assert text(None) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("14000"), "14000.00"),
        (Decimal("12500.5"), "12500.50"),
        (Decimal("0"), "0.00"),
        (0, "0.00"),
        (3.5, "3.50"),
        (None, ""),
    ],
)
def test_a_decimal_field_is_shown_with_its_decimal_places(value, expected):
    assert text(read_path(Card(estimate=value), "estimate")) == expected


def test_choices_are_shown_by_label_and_foreign_keys_by_str():
    card = Card(kind=Card.Kind.FEATURE, project=Project(name="Ops"))
    assert read_path(card, "kind") == "Feature request"
    assert read_path(card, "kind", display=False) == "feature"
    assert text(read_path(card, "project")) == "Ops"


# -- what reaches the sandbox -------------------------------------------------------


def test_thread_shows_every_field_type_as_people_read_it(sandbox, source, tags, settings):
    settings.TIME_ZONE = "Europe/Helsinki"
    with transaction.atomic():
        card = Card.objects.create(
            title="Printer on fire",
            kind=Card.Kind.FEATURE,
            due=DUE,
            project=Project.objects.create(name="Ops"),
            urgent=True,
            estimate=Decimal("1234.50"),
            attachment="reports/q3.pdf",
        )
        card.tags.add(tags["zeta"], tags["alpha"])
        card.subtasks.create(name="Order toner")
        card.subtasks.create(name="Call facilities")

    [created] = activities(sandbox)
    assert created["title"] == "created card"
    assert created["thread"]["status"] == {"value": "Feature request", "color": "blue"}
    assert fields_of(created) == {
        "Tags": "alpha, zeta",
        "Due": "Jan. 2, 2026, 12:30 p.m.",
        "Project": "Ops",
        "Urgent": "yes",
        "Estimate": "1234.50",
        "Attachment": "reports/q3.pdf",
        "Subtasks": "Call facilities, Order toner",
    }


def test_changed_fields_of_every_type_are_named_in_the_update(sandbox, card, settings):
    settings.TIME_ZONE = "Europe/Helsinki"
    card.due = DUE
    card.urgent = True
    card.estimate = Decimal("3.50")
    card.kind = Card.Kind.FEATURE
    card.project = Project.objects.create(name="Ops")
    card.save()

    update = activities(sandbox)[-1]
    assert update["title"] == "updated card"
    for line in (
        "Status: Bug report → Feature request",
        "Due: — → Jan. 2, 2026, 12:30 p.m.",
        "Project: — → Ops",
        "Urgent: no → yes",
        "Estimate: — → 3.50",
    ):
        assert line in update["body"]


def test_a_changed_decimal_is_shown_one_way_in_the_update_and_the_field(sandbox, card):
    card.estimate = Decimal("12500.50")
    card.save()
    card.estimate = Decimal("14000")
    card.save()

    update = activities(sandbox)[-1]
    assert "Estimate: 12500.50 → 14000.00" in update["body"]
    assert fields_of(update)["Estimate"] == "14000.00"


def test_zero_is_shown_with_the_fields_decimal_places(sandbox, source):
    card = Card.objects.create(title="Free of charge", estimate=0)
    wait_for_delivery()
    card.estimate = Decimal("0.5")
    card.save()

    created, updated = activities(sandbox)
    assert fields_of(created)["Estimate"] == "0.00"
    assert "Estimate: 0.00 → 0.50" in updated["body"]
    assert fields_of(updated)["Estimate"] == "0.50"


def test_empty_fields_are_left_out_of_the_thread(sandbox, source):
    card = Card.objects.create(title="Bare")
    wait_for_delivery()
    card.estimate = Decimal("2")
    card.save()

    created, updated = activities(sandbox)
    # Tags, due date, project, estimate, attachment and subtasks are empty.
    assert created["thread"]["fields"] == [{"label": "Urgent", "value": "no"}]
    assert "Estimate: — → 2.00" in updated["body"]
    assert fields_of(updated) == {"Urgent": "no", "Estimate": "2.00"}
    inbox = requests.get(sandbox.credentials["flow"]["web_url"], timeout=10).text
    assert inbox.count('<tr class="field"') == 2


def test_a_file_saved_in_place_is_named_in_the_update(sandbox, card, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    card.attachment = "reports/q3.pdf"
    card.save()
    wait_for_delivery()
    card.attachment.save("q4.pdf", ContentFile(b"%PDF"), save=True)

    update = activities(sandbox)[-1]
    assert "Attachment: reports/q3.pdf → q4.pdf" in update["body"]
    assert fields_of(update)["Attachment"] == "q4.pdf"


@pytest.mark.parametrize(
    ("change", "before", "after"),
    [
        (lambda card, tags: card.tags.add(tags["beta"]), "alpha, zeta", "alpha, beta, zeta"),
        (lambda card, tags: card.tags.remove(tags["zeta"]), "alpha, zeta", "alpha"),
        (lambda card, tags: card.tags.clear(), "alpha, zeta", "—"),
        (lambda card, tags: card.tags.set([tags["beta"]]), "alpha, zeta", "beta"),
        (lambda card, tags: tags["beta"].cards.add(card), "alpha, zeta", "alpha, beta, zeta"),
        (lambda card, tags: tags["alpha"].cards.remove(card), "alpha, zeta", "zeta"),
        (lambda card, tags: tags["alpha"].cards.clear(), "alpha, zeta", "zeta"),
    ],
    ids=["add", "remove", "clear", "set", "reverse-add", "reverse-remove", "reverse-clear"],
)
def test_changing_only_the_tags_sends_one_update_naming_it(
    sandbox, card, tags, change, before, after
):
    sent_before = len(activities(sandbox))
    change(card, tags)

    new = activities(sandbox)[sent_before:]
    assert [m["title"] for m in new] == ["updated card"]
    assert new[0]["body"] == f"<ul><li>Tags: {before} → {after}</li></ul>"
    # No tags left: the field is left out of the thread.
    assert fields_of(new[0]).get("Tags", "—") == after


def test_reverse_clear_updates_every_thread_that_held_the_tag(sandbox, card, tags):
    with transaction.atomic():
        other = Card.objects.create(title="Scanner jammed")
        other.tags.add(tags["alpha"])
    wait_for_delivery()
    sent_before = len(activities(sandbox))

    tags["alpha"].cards.clear()

    new = activities(sandbox)[sent_before:]
    assert sorted((m["external_thread_id"], m["body"]) for m in new) == [
        (f"testapp.card:{card.pk}", "<ul><li>Tags: alpha, zeta → zeta</li></ul>"),
        (f"testapp.card:{other.pk}", "<ul><li>Tags: alpha → —</li></ul>"),
    ]


def test_adding_a_tag_already_there_sends_nothing(sandbox, card, tags):
    sent_before = len(activities(sandbox))
    card.tags.add(tags["alpha"])
    assert len(activities(sandbox)) == sent_before


def test_tags_and_fields_changed_in_one_transaction_are_one_update(sandbox, card, tags):
    sent_before = len(activities(sandbox))
    with transaction.atomic():
        card.tags.remove(tags["zeta"])
        card.title = "Printer fixed"
        card.save()
        card.tags.add(tags["beta"])

    [update] = activities(sandbox)[sent_before:]
    assert "Title: Printer on fire → Printer fixed" in update["body"]
    assert "Tags: alpha, zeta → alpha, beta" in update["body"]
    assert update["thread"]["title"] == "Printer fixed"


def test_changing_only_the_tags_in_the_admin_sends_one_update(sandbox, card, tags, client):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    sent_before = len(activities(sandbox))

    response = client.post(
        f"/admin/testapp/card/{card.pk}/change/",
        {
            "title": card.title,
            "notes": "",
            "kind": card.kind,
            "tags": [tags["beta"].pk, tags["zeta"].pk],
            "subtasks-TOTAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    [update] = activities(sandbox)[sent_before:]
    assert update["body"] == "<ul><li>Tags: alpha, zeta → beta, zeta</li></ul>"
    assert update["author"]["name"] == "boss"


def test_a_comment_carries_the_threads_fields(sandbox, card):
    CardComment.objects.create(card=card, text="Toner ordered")

    [discussion] = sandbox.messages(event="discussion")
    assert discussion["external_thread_id"] == f"testapp.card:{card.pk}"
    assert discussion["body"] == "Toner ordered"
    assert fields_of(discussion)["Tags"] == "alpha, zeta"
