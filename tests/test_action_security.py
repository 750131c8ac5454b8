"""Every forged, stale, replayed or unauthorised action request is refused with the right
status, and nothing changes: the ticket stays as it was and no message is queued (the
one left is the ticket's creation, which records the source its thread went to)."""

import hashlib
import json
import time

import jwt
import pytest
from django.core import signing
from django.urls import reverse

from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Message, Source
from django_flowdock.testing import signed_action_headers
from tests.actions_support import (
    FLOWDOCK_USER_ID,
    SECRET,
    make_application,
    make_user,
    post,
    signed,
)
from tests.testapp.models import Ticket

OTHER_SECRET = "another-application-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def setup(db):
    make_application()


@pytest.fixture
def user():
    return make_user()


@pytest.fixture
def ticket(user):
    ticket = Ticket.objects.create(subject="Polish", state="open")
    fan_out()  # posted now, through the sources that exist now
    return ticket


def forget_later_messages():
    """Keep only the creation message of the ticket: its thread's record."""
    Message.objects.exclude(pk=Message.objects.order_by("pk").first().pk).delete()


def assert_unchanged(ticket):
    fresh = Ticket.objects.get(pk=ticket.pk)
    assert (fresh.state, fresh.assignee_id) == ("open", None)
    assert Message.objects.count() == 1


def token(body, *, secret=SECRET, **claims):
    defaults = {
        "sub": FLOWDOCK_USER_ID,
        "exp": int(time.time()) + 30,
        "signature": hashlib.sha256(body).hexdigest(),
    }
    return jwt.encode({**defaults, **claims}, secret, algorithm="HS256")


def with_token(request, value):
    return request._replace(headers={**request.headers, "FLOWDOCK-TOKEN": value})


def assert_token_refused(response, reason):
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Flowdock-Token"
    assert reason in response.json()["detail"]


NOT_THIS_THREADS_APPLICATION = "not signed by the application whose source received this thread"


def test_token_signed_with_a_wrong_secret_is_401(client, ticket):
    request = signed(ticket, "Assign to me", client_secret="wrong-" + SECRET)
    assert_token_refused(post(client, request), NOT_THIS_THREADS_APPLICATION)
    assert_unchanged(ticket)


def test_token_of_an_application_whose_sources_never_received_the_thread_is_401(client, ticket):
    # Application B is registered and has a source, but the ticket was posted through
    # A's source only: B's secret must not act on it.
    make_application("app-2", OTHER_SECRET)
    request = signed(ticket, "Assign to me", client_secret=OTHER_SECRET)
    assert_token_refused(post(client, request), NOT_THIS_THREADS_APPLICATION)
    assert_unchanged(ticket)


def test_each_application_whose_source_received_the_thread_may_sign(client, user):
    make_application("app-2", OTHER_SECRET)
    ticket = Ticket.objects.create(subject="In two flows")  # posted through both sources
    fan_out()
    assert {m.source.application.client_id for m in Message.objects.all()} == {"app-1", "app-2"}
    for secret, action in ((SECRET, "Assign to me"), (OTHER_SECRET, "Mark as solved")):
        response = post(client, signed(ticket, action, client_secret=secret))
        assert response.status_code == 200, response.content
    ticket.refresh_from_db()
    assert (ticket.assignee, ticket.state) == (user, "solved")


def test_thread_posted_only_through_sources_connected_by_hand_is_401(client, user):
    Source.objects.update(application=None)
    ticket = Ticket.objects.create(subject="Polish", state="open")
    request = signed(ticket, "Assign to me")
    assert_token_refused(post(client, request), "set the application of the thread's sources")
    assert_unchanged(ticket)


def test_thread_whose_messages_went_to_no_source_is_401(client, user):
    Source.objects.all().delete()
    ticket = Ticket.objects.create(subject="Polish", state="open")
    response = post(client, signed(ticket, "Assign to me"))
    assert_token_refused(response, "no source of an OAuth application received this thread")
    assert (Ticket.objects.get(pk=ticket.pk).assignee_id, Message.objects.count()) == (None, 0)


def test_token_expired_longer_ago_than_the_leeway_is_401(client, ticket):
    request = signed(ticket, "Assign to me")
    expired = token(request.body, exp=int(time.time()) - 30)
    assert_token_refused(post(client, with_token(request, expired)), "expired")
    assert_unchanged(ticket)


def test_token_expired_within_the_leeway_is_accepted(client, ticket, user):
    """Our clock may run a few seconds ahead of Flowdock's: a token it expired 5 s ago
    is within the default leeway of 10 s."""
    request = signed(ticket, "Assign to me")
    late = token(request.body, exp=int(time.time()) - 5)
    response = post(client, with_token(request, late))
    assert response.status_code == 200, response.content
    assert Ticket.objects.get(pk=ticket.pk).assignee == user


def test_leeway_of_zero_refuses_a_token_expired_a_second_ago(client, ticket, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "ACTION_TOKEN_LEEWAY": 0}
    request = signed(ticket, "Assign to me")
    expired = token(request.body, exp=int(time.time()) - 1)
    assert_token_refused(post(client, with_token(request, expired)), "expired")
    assert_unchanged(ticket)


def test_replay_within_the_leeway_is_401_even_after_the_store_is_pruned(client, ticket, settings):
    """The used-token record lives until exp + leeway (and the store's own skew), not
    just until exp: with a leeway longer than that skew, the replay's own pruning of
    expired rows must not forget the token it replays."""
    settings.FLOWDOCK = {**settings.FLOWDOCK, "ACTION_TOKEN_LEEWAY": 120}
    request = signed(ticket, "Mark as solved")
    late = with_token(request, token(request.body, exp=int(time.time()) - 90))
    assert post(client, late).status_code == 200
    Ticket.objects.filter(pk=ticket.pk).update(state="open")
    forget_later_messages()

    assert_token_refused(post(client, late), "already used")
    assert_unchanged(ticket)


def test_token_without_exp_is_401(client, ticket):
    request = signed(ticket, "Assign to me")
    claims = {"sub": FLOWDOCK_USER_ID, "signature": hashlib.sha256(request.body).hexdigest()}
    no_exp = jwt.encode(claims, SECRET, algorithm="HS256")
    assert_token_refused(post(client, with_token(request, no_exp)), "missing claim(s) exp")
    assert_unchanged(ticket)


def test_token_expiring_far_in_the_future_is_401(client, ticket):
    request = signed(ticket, "Assign to me")
    far = token(request.body, exp=int(time.time()) + 3600)
    assert_token_refused(post(client, with_token(request, far)), "too far in the future")
    assert_unchanged(ticket)


def test_lifetime_bound_allows_the_leeway_and_no_more(client, ticket, user):
    """A Flowdock clock ahead of ours makes a token look longer-lived: 5 minutes plus
    the leeway pass, a minute more does not."""
    request = signed(ticket, "Assign to me")
    beyond = token(request.body, exp=int(time.time()) + 300 + 60)
    assert_token_refused(post(client, with_token(request, beyond)), "too far in the future")
    assert_unchanged(ticket)
    within = token(request.body, exp=int(time.time()) + 300 + 5)
    assert post(client, with_token(request, within)).status_code == 200


def test_body_altered_after_signing_is_401(client, ticket):
    url, body, headers = signed(ticket, "Assign to me")
    altered = body.replace(b"Flowdock User", b"Someone Else")
    response = client.post(url, altered, content_type="application/json", headers=headers)
    assert_token_refused(response, "body does not match")
    assert_unchanged(ticket)


def test_missing_header_is_401_with_challenge(client, ticket):
    url, body, _ = signed(ticket, "Assign to me")
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Flowdock-Token"
    assert_unchanged(ticket)


@pytest.mark.parametrize(
    "make_token",
    [
        lambda body: "garbage",
        lambda body: "a.b.c",
        lambda body: jwt.encode({"sub": "77", "exp": int(time.time()) + 30}, None, "none"),
        lambda body: token(body, sub=["77"]),
        lambda body: token(body, exp="soon"),
    ],
    ids=["not-a-jwt", "bad-segments", "alg-none", "sub-not-an-id", "exp-not-a-number"],
)
def test_malformed_tokens_are_401_not_500(client, ticket, make_token):
    request = signed(ticket, "Assign to me")
    response = post(client, with_token(request, make_token(request.body)))
    assert response.status_code == 401, response.content
    assert_unchanged(ticket)


def test_replayed_token_is_401(client, ticket):
    request = signed(ticket, "Mark as solved")
    assert post(client, request).status_code == 200
    Ticket.objects.filter(pk=ticket.pk).update(state="open")
    forget_later_messages()

    assert_token_refused(post(client, request), "already used")
    assert_unchanged(ticket)


def test_action_the_model_does_not_define_is_404(client, ticket):
    # "delete" is a real method of the model, but not an action.
    value = signing.Signer(salt="django_flowdock.actions").sign_object(
        ["testapp.ticket", str(ticket.pk), "delete"], compress=True
    )
    url = "https://helpdesk.example" + reverse("django_flowdock:action", args=[value])
    body = json.dumps({"@type": "UpdateAction", "name": "Delete"}).encode()
    response = client.post(
        url,
        body,
        content_type="application/json",
        headers=signed_action_headers(
            body, client_secret=SECRET, flowdock_user_id=FLOWDOCK_USER_ID
        ),
    )
    assert response.status_code == 404
    assert "no action 'delete'" in response.json()["detail"]
    assert Ticket.objects.filter(pk=ticket.pk).exists()
    assert_unchanged(ticket)


def test_target_altered_to_another_object_is_404(client, ticket):
    other = Ticket.objects.create(subject="Other")
    url, body, headers = signed(ticket, "Assign to me")
    Message.objects.filter(thread_key=other.get_flowdock_thread_id()).delete()
    payload, _signature = url.rstrip("/").rsplit("/", 1)[1].rsplit(":", 1)
    forged_payload = (
        signing.Signer(salt="django_flowdock.actions")
        .sign_object(["testapp.ticket", str(other.pk), "assign_to_me"], compress=True)
        .rsplit(":", 1)[0]
    )
    forged = url.replace(payload, forged_payload)  # someone else's object, our signature
    response = client.post(forged, body, content_type="application/json", headers=headers)
    assert response.status_code == 404
    assert Ticket.objects.get(pk=other.pk).assignee_id is None
    assert_unchanged(ticket)


def test_object_that_no_longer_exists_is_404(client, ticket):
    request = signed(ticket, "Assign to me")
    Ticket.objects.filter(pk=ticket.pk).delete()
    Message.objects.all().delete()
    response = post(client, request)
    assert response.status_code == 404
    assert "no longer exists" in response.json()["detail"]
    assert not Ticket.objects.exists()
    assert Message.objects.count() == 0


def test_user_without_permission_is_403(client, ticket, user):
    user.user_permissions.clear()
    response = post(client, signed(ticket, "Assign to me"))
    assert response.status_code == 403
    assert_unchanged(ticket)


def test_permission_hook_on_the_model_decides(client, ticket, monkeypatch):
    monkeypatch.setattr(
        Ticket,
        "has_flowdock_action_permission",
        lambda self, user, action: action.key != "assign_to_me",
    )
    assert post(client, signed(ticket, "Assign to me")).status_code == 403
    assert_unchanged(ticket)
    assert post(client, signed(ticket, "Mark as solved")).status_code == 200


def test_inactive_linked_user_is_treated_as_unknown(client, ticket, user):
    user.is_active = False
    user.save()
    response = post(client, signed(ticket, "Assign to me"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Flowdock-Token url=")
    assert_unchanged(ticket)


def test_action_whose_condition_no_longer_holds_is_409(client, ticket, user):
    Ticket.objects.filter(pk=ticket.pk).update(assignee=user)
    response = post(client, signed(ticket, "Assign to me"))
    assert response.status_code == 409
    assert Message.objects.count() == 1


def test_get_is_not_allowed(client, ticket):
    url, _, _ = signed(ticket, "Assign to me")
    headers = signed_action_headers(b"", client_secret=SECRET, flowdock_user_id=FLOWDOCK_USER_ID)
    response = client.get(url, headers=headers)
    assert response.status_code == 405
    assert_unchanged(ticket)


# The body names its target; a signed body made for one button works at no other URL.


def test_body_made_for_another_tickets_action_is_403_at_this_url(client, user):
    nine = Ticket.objects.create(subject="Nine", state="open")
    ten = Ticket.objects.create(subject="Ten", state="open")
    solve_nine = signed(nine, "Mark as solved")  # valid, unused
    assign_ten = signed(ten, "Assign to me")

    response = client.post(
        assign_ten.url, solve_nine.body, content_type="application/json", headers=solve_nine.headers
    )

    assert response.status_code == 403, response.content
    assert "target.urlTemplate" in response.json()["detail"]
    assert [(t.state, t.assignee_id) for t in Ticket.objects.all()] == [("open", None)] * 2
    assert Message.objects.count() == 2  # the two creations, nothing since
    # Refused before it was spent: the request still works where it was made for.
    assert post(client, solve_nine).status_code == 200


def test_body_naming_another_http_method_is_403(client, ticket):
    action = json.loads(signed(ticket, "Assign to me").body)
    action["target"]["httpMethod"] = "DELETE"
    request = signed(ticket, "Assign to me", body=json.dumps(action).encode())

    response = post(client, request)

    assert response.status_code == 403, response.content
    assert "target.httpMethod" in response.json()["detail"]
    assert_unchanged(ticket)


def test_body_without_a_target_is_403(client, ticket):
    request = signed(ticket, "Assign to me", body=b'{"@type": "UpdateAction"}')
    response = post(client, request)
    assert response.status_code == 403, response.content
    assert_unchanged(ticket)


def test_replayed_token_with_reencoded_signature_is_401(db, client):
    """base64url decoding tolerates padding, so ``token + "="`` carries the same valid
    signature: the replay store must not be fooled by a re-encoded copy."""
    make_user()
    ticket = Ticket.objects.create(subject="Polish", state="open")
    request = signed(ticket, "Mark as solved")
    assert post(client, request).status_code == 200
    Ticket.objects.filter(pk=ticket.pk).update(state="open")

    token = request.headers["FLOWDOCK-TOKEN"]
    replay = request._replace(headers={**request.headers, "FLOWDOCK-TOKEN": token + "="})
    response = post(client, replay)

    assert response.status_code == 401, response.content
    assert "already used" in response.json()["detail"]
    assert Ticket.objects.get(pk=ticket.pk).state == "open"


def test_token_with_an_exp_too_large_for_a_float_is_401_not_500(db, client):
    """The expiry is checked before the signature, so anyone can send this."""
    make_user()
    ticket = Ticket.objects.create(subject="Polish", state="open")
    request = signed(ticket, "Mark as solved")
    claims = {"sub": "77", "exp": 10**400, "signature": hashlib.sha256(request.body).hexdigest()}
    forged = jwt.encode(claims, "any-secret-of-the-attacker-0123456789", algorithm="HS256")

    response = post(client, request._replace(headers={**request.headers, "FLOWDOCK-TOKEN": forged}))

    assert response.status_code == 401, response.content
    assert "too far in the future" in response.json()["detail"]
    assert Ticket.objects.get(pk=ticket.pk).state == "open"
