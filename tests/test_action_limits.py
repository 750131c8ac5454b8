"""What the action endpoint refuses before it costs anything: tokens that are malformed,
incomplete or stale are refused without a query; bodies that are not JSON in UTF-8 are
refused (415) before the token is looked at or spent; and one Flowdock user's requests
are throttled (scope ``flowdock_actions``, 120 a minute unless configured)."""

import hashlib
import time

import jwt
import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from django_flowdock.actions import views
from django_flowdock.actions.authentication import FlowdockIdentity
from django_flowdock.actions.views import FlowdockActionThrottle
from django_flowdock.models import Message, UsedToken
from tests.actions_support import FLOWDOCK_USER_ID, SECRET, make_application, make_user, signed
from tests.testapp.models import Ticket


@pytest.fixture
def user(db):
    make_application()
    return make_user()


@pytest.fixture
def ticket(user):
    ticket = Ticket.objects.create(subject="Polish", state="open")
    signed(ticket, "Assign to me")  # the creation reaches the application's source
    return ticket


def assert_unchanged(ticket):
    fresh = Ticket.objects.get(pk=ticket.pk)
    assert (fresh.state, fresh.assignee_id) == ("open", None)
    assert Message.objects.count() == 1  # the ticket's creation, nothing since
    assert not UsedToken.objects.exists()


def claims_for(body, **changes):
    claims = {
        "sub": FLOWDOCK_USER_ID,
        "exp": int(time.time()) + 30,
        "signature": hashlib.sha256(body).hexdigest(),
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def token(body, **changes):
    return jwt.encode(claims_for(body, **changes), SECRET, algorithm="HS256")


def send(client, request, *, content_type="application/json", body=None, token_value=None):
    headers = {"FLOWDOCK-TOKEN": token_value or request.headers["FLOWDOCK-TOKEN"]}
    data = request.body if body is None else body
    # generic(): post() would re-encode the bytes for a charset other than UTF-8.
    return client.generic("POST", request.url, data, content_type=content_type, headers=headers)


# Refused before any query


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda body: "garbage", "not a JWT"),
        (lambda body: "a.b.c", "not a JWT"),
        (lambda body: token(body, exp=None), "missing claim(s) exp"),
        (lambda body: token(body, sub=None), "missing claim(s) sub"),
        (lambda body: token(body, signature=None), "missing claim(s) signature"),
        (lambda body: token(body, sub=["77"]), "sub is not a user id"),
        (lambda body: token(body, exp=int(time.time()) - 60), "expired"),
        (lambda body: token(body, exp=int(time.time()) + 3600), "too far in the future"),
        (lambda body: token(body, exp=10**400), "too far in the future"),
        (
            lambda body: jwt.encode(claims_for(body), None, algorithm="none"),
            "not signed with HS256",
        ),
        (lambda body: token(b"another body"), "the body does not match its signature"),
    ],
    ids=[
        "not-a-jwt",
        "bad-segments",
        "no-exp",
        "no-sub",
        "no-signature",
        "sub-not-an-id",
        "expired-beyond-the-leeway",
        "too-long-lived",
        "exp-too-large-for-a-float",
        "alg-none",
        "made-for-another-body",
    ],
)
def test_malformed_or_stale_token_is_refused_before_any_query(
    client, ticket, django_assert_num_queries, make_token, reason
):
    request = signed(ticket, "Assign to me")

    with django_assert_num_queries(0):
        response = send(client, request, token_value=make_token(request.body))

    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Flowdock-Token"
    assert reason in response.json()["detail"]
    assert_unchanged(ticket)


def test_a_request_without_a_token_costs_no_query(client, ticket, django_assert_num_queries):
    request = signed(ticket, "Assign to me")
    with django_assert_num_queries(0):
        response = client.post(request.url, request.body, content_type="application/json")
    assert response.status_code == 401
    assert_unchanged(ticket)


def test_a_well_formed_current_token_is_what_reaches_the_database(client, ticket):
    request = signed(ticket, "Assign to me")
    assert send(client, request).status_code == 200
    assert Ticket.objects.get(pk=ticket.pk).assignee_id is not None


# Only JSON in UTF-8


def utf16_request(ticket, encoding):
    """A request signed for its body in ``encoding``: everything but the encoding right."""
    body = signed(ticket, "Assign to me").body.decode().encode(encoding)
    return signed(ticket, "Assign to me", body=body)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16", ""],
    ids=["text", "form", "json-labelled-utf-16", "none"],
)
def test_a_correctly_signed_body_not_sent_as_json_in_utf8_is_415_and_applies_nothing(
    client, ticket, django_assert_num_queries, content_type
):
    request = signed(ticket, "Assign to me")

    with django_assert_num_queries(0):
        response = send(client, request, content_type=content_type)

    assert response.status_code == 415, response.content
    assert "application/json in UTF-8" in response.json()["detail"]
    assert_unchanged(ticket)
    # Not spent: the same token works when the body is sent as Flowdock sends it.
    assert send(client, request).status_code == 200


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_json_body_in_utf16_or_utf32_is_415_and_applies_nothing(client, ticket, encoding):
    request = utf16_request(ticket, encoding)
    labels = ["application/json", f"application/json; charset={encoding}"]
    for content_type in labels:
        response = send(client, request, content_type=content_type)

        assert response.status_code == 415, response.content
        assert "UTF-8" in response.json()["detail"]
        assert_unchanged(ticket)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=UTF-8", 'Application/JSON; charset="utf8"']
)
def test_json_labelled_utf8_in_any_spelling_is_accepted(client, ticket, content_type):
    response = send(client, signed(ticket, "Assign to me"), content_type=content_type)
    assert response.status_code == 200, response.content


# Throttled per Flowdock user


@pytest.fixture
def rate(settings):
    def set_rate(value):
        settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"flowdock_actions": value}}

    return set_rate


def press(client, ticket, action, flowdock_user_id=FLOWDOCK_USER_ID):
    return send(client, signed(ticket, action, flowdock_user_id=flowdock_user_id))


def test_one_flowdock_users_requests_beyond_the_rate_are_429_and_change_nothing(
    client, ticket, user, rate
):
    rate("2/minute")
    assert press(client, ticket, "Assign to me").status_code == 200
    Ticket.objects.filter(pk=ticket.pk).update(assignee=None)
    assert press(client, ticket, "Assign to me").status_code == 200
    Ticket.objects.filter(pk=ticket.pk).update(assignee=None)
    third = signed(ticket, "Mark as solved")  # fans out what the first two changed
    messages = Message.objects.count()

    response = send(client, third)

    assert response.status_code == 429, response.content
    assert 0 < int(response["Retry-After"]) <= 60
    assert Ticket.objects.get(pk=ticket.pk).state == "open"
    assert Message.objects.count() == messages


def test_the_throttle_counts_each_flowdock_user_apart(client, ticket, user, rate):
    from django_flowdock.models import FlowdockUser

    FlowdockUser.objects.create(flowdock_user_id="78", user=make_user("doc", link=False))
    rate("1/minute")
    assert press(client, ticket, "Assign to me").status_code == 200
    assert press(client, ticket, "Mark as solved").status_code == 429

    assert press(client, ticket, "Mark as solved", flowdock_user_id="78").status_code == 200


def test_without_a_configured_rate_the_default_applies(client, ticket, monkeypatch):
    assert views.DEFAULT_ACTION_RATE == "120/minute"
    monkeypatch.setattr(views, "DEFAULT_ACTION_RATE", "1/minute")
    assert press(client, ticket, "Assign to me").status_code == 200
    assert press(client, ticket, "Mark as solved").status_code == 429


def test_a_rate_of_none_turns_the_throttle_off(client, ticket, rate, monkeypatch):
    monkeypatch.setattr(views, "DEFAULT_ACTION_RATE", "1/minute")
    rate(None)
    for action in ("Assign to me", "Mark as solved", "Assign to me"):
        Ticket.objects.filter(pk=ticket.pk).update(assignee=None, state="open")
        assert press(client, ticket, action).status_code == 200


def test_a_request_naming_no_flowdock_user_is_counted_per_client_address(settings):
    settings.REST_FRAMEWORK = {"NUM_PROXIES": 1}
    throttle = FlowdockActionThrottle()
    anonymous = Request(
        RequestFactory().post("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.7")
    )
    identified = Request(RequestFactory().post("/"))
    identified.auth = FlowdockIdentity("77", None, {})

    assert throttle.get_cache_key(anonymous, None) == "throttle_flowdock_actions_ip:192.0.2.7"
    assert throttle.get_cache_key(identified, None) == "throttle_flowdock_actions_user:77"
