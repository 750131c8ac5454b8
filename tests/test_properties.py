"""Property: whatever a model holds and whoever saves it, the save succeeds and every
message produced is one the API accepts.

Arbitrary text (control characters, NUL, emoji, right-to-left, HTML, up to ~100 KB),
None, related objects for each option type, and arbitrary users as authors, saved
through the ORM and through a view; delivered by the real engine to the locmem
transport and checked against the API's schema (the sandbox's own serializers cannot
be imported beside the app's models; tests/test_messy_data.py posts to it).
"""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from django_flowdock.context import acting_as
from django_flowdock.models import Message, Source
from django_flowdock.threads.schema import validate_message
from tests.testapp.models import Card, CardComment, Project, Reply, Tag, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

_chars = st.characters(exclude_categories=("Cs",))  # lone surrogates cannot be stored
_special = st.sampled_from(
    ["\x00", "\x07", "\x1b", "\x7f", "🙂", "🔥", "שלום", "مرحبا", "\u202e", "<b>", "</a>", "&"]
)
_short = st.lists(st.one_of(st.text(_chars, max_size=8), _special), max_size=10).map("".join)
_long = st.builds(lambda part, times: part * times, _short.filter(bool), st.integers(1, 2000))
TEXT = st.one_of(_short, _long).map(lambda s: s.replace("\x00", "") if _no_nul() else s)


def _no_nul():
    return connection.vendor == "postgresql"  # PostgreSQL refuses NUL in text


def maybe(strategy):
    return st.one_of(st.none(), strategy)


USERS = st.fixed_dictionaries(
    {
        "first_name": st.text(_chars, max_size=150),
        "last_name": st.text(_chars, max_size=150),
        "email": st.one_of(st.just("ops@intranet"), st.just(""), st.emails(), _short),
    }
)
CARDS = st.fixed_dictionaries(
    {
        "title": TEXT,
        "notes": TEXT,
        "kind": st.one_of(st.sampled_from(["bug", "feature"]), _short),
        "due": maybe(st.datetimes(timezones=st.just(datetime.UTC))),
        "project": maybe(TEXT),
        "urgent": st.booleans(),
        "estimate": maybe(st.decimals(min_value=-99999, max_value=99999, places=2)),
        "attachment": _short,
        "tags": st.lists(_short, max_size=4),
    }
)


def fit(model, **values):
    """``values`` cut to the columns of ``model``: what the database itself would refuse
    (PostgreSQL and MariaDB enforce a CharField's max_length) is not the app's data."""
    fitted = {}
    for name, value in values.items():
        limit = getattr(model._meta.get_field(name), "max_length", None)
        if isinstance(value, str):
            value = value[:limit] if limit else value
            value = value.replace("\x00", "") if _no_nul() else value
        fitted[name] = value
    return fitted


def make_user(values):
    values = {k: v.replace("\x00", "") for k, v in values.items()}
    model = get_user_model()
    return model.objects.create_user(f"u{uuid.uuid4().hex}", password="pw", **fit(model, **values))


def save_card(values):
    values = dict(values)
    tags = values.pop("tags")
    project = values.pop("project")
    if project is not None:
        values["project"] = Project.objects.create(**fit(Project, name=project))
    if isinstance(values["estimate"], Decimal) and not values["estimate"].is_finite():
        values["estimate"] = None
    card = Card.objects.create(**fit(Card, **values))
    card.tags.set([Tag.objects.create(**fit(Tag, name=name)) for name in tags])
    return card


def assert_every_message_is_valid(outbox):
    assert outbox
    for payload in outbox:
        validate_message(payload, "property")
    unsent = Message.objects.exclude(state=Message.State.SENT)
    assert not unsent.exists(), [m.last_error[-600:] for m in unsent]


@pytest.fixture
def outbox(flowdock_outbox):
    Source.objects.create(name="Locmem", flow_token="locmem-token")
    return flowdock_outbox


HYPOTHESIS = settings(
    # Fewer on a database server, where each example's rows are flushed over a socket.
    max_examples=30 if connection.vendor == "sqlite" else 12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


PLAIN_CARD = {
    "title": "t",
    "notes": "",
    "kind": "bug",
    "due": None,
    "project": None,
    "urgent": False,
    "estimate": None,
    "attachment": "",
    "tags": [],
}


@HYPOTHESIS
@given(user=USERS, created=CARDS, updated=CARDS, comment=TEXT)
@example(
    user={"first_name": "", "last_name": "", "email": ""},
    created={**PLAIN_CARD, "kind": "\x07"},
    updated={**PLAIN_CARD, "kind": " "},
    comment="",
)
def test_any_card_saved_through_the_orm_by_any_user_is_delivered_valid(
    outbox, user, created, updated, comment
):
    outbox.clear()
    author = make_user(user)
    with acting_as(author):
        card = save_card(created)
        with transaction.atomic():
            changes = {k: v for k, v in updated.items() if k not in ("tags", "project")}
            for name, value in fit(Card, **changes).items():
                setattr(card, name, value if name != "estimate" else None)
            card.save()
            card.tags.add(*[Tag.objects.create(**fit(Tag, name=n)) for n in updated["tags"]])
        CardComment.objects.create(**fit(CardComment, card=card, text=comment))

    assert_every_message_is_valid(outbox)
    assert outbox[-1]["event"] == "discussion"


@HYPOTHESIS
@given(user=USERS, subject=TEXT, description=TEXT, reply=TEXT)
def test_any_ticket_saved_through_a_view_by_any_user_is_delivered_valid(
    outbox, user, subject, description, reply
):
    outbox.clear()
    ticket = Ticket.objects.create(**fit(Ticket, subject=subject, description=description))
    Reply.objects.create(**fit(Reply, ticket=ticket, text=reply))
    client = Client()
    client.force_login(make_user(user))

    response = client.post(f"/tickets/{ticket.pk}/solve/")

    assert response.status_code == 204
    assert_every_message_is_valid(outbox)
    assert outbox[-1]["thread"]["status"]["value"] == "solved"
