"""Every forged, stale, replayed or unauthorised action request is refused with the right
status, and nothing changes: the ticket stays as it was and no message is queued."""

import hashlib
import json
import time

import jwt
import pytest
from django.core import signing
from django.core.cache import cache
from django.urls import reverse

from django_flowdock.models import Message
from django_flowdock.testing import signed_action_headers
from tests.actions_support import (
    FLOWDOCK_USER_ID,
    SECRET,
    make_application,
    make_source,
    make_user,
    post,
    signed,
)
from tests.testapp.models import Ticket

OTHER_SECRET = "another-application-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def setup(db):
    cache.clear()
    make_application()
    make_source()
    yield
    cache.clear()


@pytest.fixture
def user():
    return make_user()


@pytest.fixture
def ticket(user):
    ticket = Ticket.objects.create(subject="Polish", state="open")
    Message.objects.all().delete()
    return ticket


def assert_unchanged(ticket):
    fresh = Ticket.objects.get(pk=ticket.pk)
    assert (fresh.state, fresh.assignee_id) == ("open", None)
    assert Message.objects.count() == 0


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


def test_token_signed_with_a_wrong_secret_is_401(client, ticket):
    request = signed(ticket, "Assign to me", client_secret="wrong-" + SECRET)
    assert_token_refused(post(client, request), "not signed by a known application")
    assert_unchanged(ticket)


def test_token_signed_for_another_application_is_401(client, ticket):
    request = signed(ticket, "Assign to me", client_secret=OTHER_SECRET)
    assert_token_refused(post(client, request), "not signed by a known application")
    assert_unchanged(ticket)


def test_each_registered_application_secret_is_accepted(client, ticket):
    make_application("app-2", OTHER_SECRET)  # a second application, or a rotated secret
    assert (
        post(client, signed(ticket, "Assign to me", client_secret=OTHER_SECRET)).status_code == 200
    )


def test_expired_token_is_401(client, ticket):
    request = signed(ticket, "Assign to me")
    expired = token(request.body, exp=int(time.time()) - 1)
    assert_token_refused(post(client, with_token(request, expired)), "expired")
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
    Message.objects.all().delete()

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
    Message.objects.all().delete()
    url, body, headers = signed(ticket, "Assign to me")
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
    assert Message.objects.count() == 0


def test_get_is_not_allowed(client, ticket):
    url, _, _ = signed(ticket, "Assign to me")
    headers = signed_action_headers(b"", client_secret=SECRET, flowdock_user_id=FLOWDOCK_USER_ID)
    response = client.get(url, headers=headers)
    assert response.status_code == 405
    assert_unchanged(ticket)
