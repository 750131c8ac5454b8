"""The plain-Python check in front of the API's serializer: a message it takes is one
the serializer takes, and a rendered message takes it (so delivery skips DRF)."""

import copy
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from django_flowdock.threads.options import STATUS_COLORS
from django_flowdock.threads.render import activity_message
from django_flowdock.threads.schema import (
    BODY_LIMIT,
    NAME_LIMIT,
    STATUS_LIMIT,
    THREAD_ID_LIMIT,
    _message_serializer,
    _surely_valid,
    repair,
)
from tests.test_payloads import ticket
from tests.testapp.models import Project

_pieces = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "\n",
        "\x00",
        "\ud800",
        "\x07",
        "<a href='x'>",
        "</a>",
        "<b>",
        "< a>",
        "<",
        "é",
        "🙂",
        "x",
        "Ticket #1",
        "a@b.example",
    ]
)
_text = st.lists(_pieces, max_size=5).map("".join)
_sized = st.builds(
    lambda s, n: s * n,
    st.sampled_from(["x", " ", "xy"]),
    st.sampled_from(
        [
            0,
            1,
            NAME_LIMIT,
            NAME_LIMIT + 1,
            STATUS_LIMIT + 1,
            THREAD_ID_LIMIT + 1,
            BODY_LIMIT,
            BODY_LIMIT + 1,
        ]
    ),
)
_odd = st.sampled_from([None, 1, 2.5, True, [], {}, ["x"], {"x": 1}])
TEXT = st.one_of(_text, _sized, _odd)
EMAIL = st.one_of(
    TEXT,
    st.sampled_from(
        ["ops@helpdesk.example", " ops@helpdesk.example ", "ops@intranet", "not an e-mail"]
    ),
)
URL = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "https://helpdesk.example/t/1",
            " https://x.example ",
            "ftp://x.example/f",
            "javascript:alert(1)",
            "https://",
        ]
    ),
)
COLOR = st.one_of(
    st.sampled_from(sorted(STATUS_COLORS)), st.sampled_from(["pink", "", "Red"]), _odd
)


@functools.cache
def _rendered():
    """A message as delivery renders it (a ticket with a status, fields and actions),
    with an author's e-mail and a tag for the changes to reach."""
    message = activity_message(ticket(project=Project(name="Website")), "updated")
    message["author"]["email"] = "ada@helpdesk.example"
    message["tags"] = ["printer"]
    return message


DELETE = object()
# Each part of a message, and what it may be changed to.
PARTS = {
    ("event",): st.one_of(st.sampled_from(["activity", "discussion", "comment"]), _odd),
    ("author",): _odd,
    ("author", "name"): TEXT,
    ("author", "email"): EMAIL,
    ("author", "avatar"): URL,
    ("title",): TEXT,
    ("body",): TEXT,
    ("external_thread_id",): TEXT,
    ("thread",): _odd,
    ("thread", "title"): TEXT,
    ("thread", "body"): TEXT,
    ("thread", "external_url"): URL,
    ("thread", "status"): _odd,
    ("thread", "status", "value"): TEXT,
    ("thread", "status", "color"): COLOR,
    ("thread", "fields"): _odd,
    ("thread", "fields", 0): _odd,
    ("thread", "fields", 0, "label"): TEXT,
    ("thread", "fields", 1, "value"): TEXT,
    ("thread", "actions"): _odd,
    ("thread", "actions", 0): st.one_of(st.just({1: "x"}), _odd),
    ("tags",): _odd,
    ("tags", 0): TEXT,
}
CHANGE = st.sampled_from(list(PARTS)).flatmap(
    lambda path: st.tuples(st.just(path), st.one_of(st.just(DELETE), PARTS[path]))
)


def _changed(message, changes):
    """``message`` with each (path, value) applied where the path still exists."""
    message = copy.deepcopy(message)
    for path, value in changes:
        holder = message
        for key in path[:-1]:
            try:
                holder = holder[key]
            except (KeyError, IndexError, TypeError):
                break
        else:
            last = path[-1]
            if isinstance(holder, list) and not (isinstance(last, int) and last < len(holder)):
                continue
            if not isinstance(holder, (dict, list)):
                continue
            if value is not DELETE:
                holder[last] = copy.deepcopy(value)  # sampled values are shared
            elif isinstance(holder, list) or last in holder:
                del holder[last]
    return message


def _serializer_takes(message) -> bool:
    try:
        _message_serializer().run_validation(message)
    except serializers.ValidationError:
        return False
    return True


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(CHANGE, max_size=3))
def test_a_message_the_fast_check_takes_is_one_the_serializer_takes(changes):
    message = _changed(_rendered(), changes)
    if _surely_valid(message):
        assert _serializer_takes(message), message


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(CHANGE, max_size=3))
def test_a_repaired_message_the_fast_check_takes_is_one_the_serializer_takes(changes):
    message = _changed(_rendered(), changes)
    if not isinstance(message.get("author"), dict) or not isinstance(message.get("thread"), dict):
        return
    try:
        repaired, _repairs = repair(message, title="Ticket #1", author="Django")
    except (AttributeError, TypeError):  # repair() is given rendered messages, not these
        return
    if _surely_valid(repaired):
        assert _serializer_takes(repaired), repaired


@pytest.fixture
def ticket_message():
    return copy.deepcopy(_rendered())


def test_a_rendered_message_takes_the_fast_check(ticket_message):
    assert _surely_valid(ticket_message)
    assert _serializer_takes(ticket_message)


def test_the_fast_check_refuses_what_the_serializer_refuses_for_each_part(ticket_message):
    breakages = {
        "event": lambda m: m.update(event="comment"),
        "author.name": lambda m: m["author"].update(name=" "),
        "author.email": lambda m: m["author"].update(email="not an e-mail"),
        "title tag": lambda m: m.update(title="<b>x</b>"),
        "thread id": lambda m: m.update(external_thread_id="x" * (THREAD_ID_LIMIT + 1)),
        "status colour": lambda m: m["thread"]["status"].update(color="pink"),
        "field NUL": lambda m: m["thread"]["fields"][0].update(value="a\x00b"),
        "tag blank": lambda m: m.update(tags=[" "]),
        "body": lambda m: m.update(body="x" * (BODY_LIMIT + 1)),
    }
    for name, breaking in breakages.items():
        broken = copy.deepcopy(ticket_message)
        breaking(broken)
        assert not _surely_valid(broken), name
        assert not _serializer_takes(broken), name
