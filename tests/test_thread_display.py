"""What a thread shows as a whole: text that cannot reorder itself, and a deleted item
shown as gone. What reaches the sandbox is checked over real HTTP."""

import pytest
import requests

from django_flowdock.threads.schema import repair
from tests.testapp.models import Card, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

BIDI_CONTROLS = [
    "\u061c",  # ARABIC LETTER MARK
    "\u200e",  # LEFT-TO-RIGHT MARK
    "\u200f",  # RIGHT-TO-LEFT MARK
    *(chr(code) for code in range(0x202A, 0x202F)),  # embeddings, pop, overrides
    *(chr(code) for code in range(0x2066, 0x206A)),  # isolates
]


@pytest.mark.parametrize("control", BIDI_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_bidi_controls_are_removed_as_other_control_characters_are(control):
    message = {
        "title": "updated card",
        "thread": {
            "title": f"Invoice {control}gnp.exe",
            "fields": [{"label": "Owner", "value": f"{control}Mallory"}],
        },
    }

    repaired, repairs = repair(message, title="Card #1", author="Django")

    assert repaired["thread"]["title"] == "Invoice gnp.exe"
    assert repaired["thread"]["fields"] == [{"label": "Owner", "value": "Mallory"}]
    assert "thread.title: removed control characters" in repairs


def test_a_field_left_empty_by_the_cleaning_is_dropped():
    message = {
        "title": "updated card",
        "thread": {
            "title": "Invoice",
            "fields": [{"label": "Owner", "value": "\u202e"}, {"label": "Due", "value": "May"}],
        },
    }

    repaired, repairs = repair(message, title="Card #1", author="Django")

    assert repaired["thread"]["fields"] == [{"label": "Due", "value": "May"}]
    assert "thread.fields: 1 left empty dropped" in repairs


def test_right_to_left_text_itself_is_kept():
    message = {"title": "updated card", "thread": {"title": "שלום עולם مرحبا"}}

    repaired, repairs = repair(message, title="Card #1", author="Django")

    assert repaired["thread"]["title"] == "שלום עולם مرحبا"
    assert not [line for line in repairs if "control characters" in line]


def test_a_title_with_a_right_to_left_override_reaches_flowdock_in_reading_order(sandbox, source):
    Card.objects.create(title="Invoice \u202egnp.exe")

    [created] = sandbox.messages(event="activity")
    assert created["thread"]["title"] == "Invoice gnp.exe"


def test_a_deleted_items_thread_shows_it_as_deleted(sandbox, source):
    ticket = Ticket.objects.create(subject="Polish the flux capacitor", description="Dusty.")
    pk = ticket.pk
    ticket.delete()

    created, deleted = sandbox.messages(event="activity")
    assert created["thread"]["status"] == {"value": "open", "color": "green"}
    assert created["thread"]["external_url"].endswith(f"/tickets/{pk}/")
    assert created["thread"]["actions"]
    assert deleted["title"] == "deleted ticket"
    [thread] = sandbox.threads()
    # The last title, body and fields stay; the status, the link and the actions of
    # the item that is gone do not.
    assert (thread["title"], thread["body"]) == ("Polish the flux capacitor", "Dusty.")
    assert {"label": "Priority", "value": "normal"} in thread["fields"]
    assert (thread["status"], thread["external_url"], thread["actions"]) == (None, "", [])
    inbox = requests.get(sandbox.credentials["flow"]["web_url"], timeout=10).text
    assert 'class="status' not in inbox
    assert "external-link" not in inbox
    assert "update-action" not in inbox
    assert "deleted ticket" in inbox
