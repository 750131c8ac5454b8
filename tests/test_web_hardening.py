"""Hardening of the web-facing parts (actions, OAuth, configure) against replayed and
malformed tokens, refresh and double-submit races, and hostile parameters: our views
through the Django test client, Flowdock's side through the sandbox over HTTP."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

import jwt
import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from django_flowdock.api.sources import list_flows
from django_flowdock.models import OAuthApplication, OAuthToken, Source
from tests.actions_support import make_application, make_user, post, signed
from tests.flowdock_connect import consent, start
from tests.testapp.models import Ticket

CALLBACK = "/flowdock/oauth/callback/"


def test_replayed_token_with_reencoded_signature_is_401(db, client):
    """base64url decoding tolerates padding, so ``token + "="`` carries the same valid
    signature: the replay store must not be fooled by a re-encoded copy."""
    make_application()
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


@pytest.fixture
def offline_application(db, sandbox):
    return OAuthApplication.objects.create(
        name="Helpdesk",
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        offline_access=True,
    )


def test_two_holders_of_an_expired_token_both_get_a_working_access_token(
    client, django_user_model, offline_application, sandbox
):
    """Two workers load the same expired grant; the first refresh rotates the refresh
    token, so the second must use the stored result instead of the spent one."""
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    flow = sandbox.credentials["flow"]
    url = f"/flowdock/setup/{offline_application.pk}/?flow={flow['id']}"
    client.get(CALLBACK, consent(start(client, url)))
    OAuthToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    first, second = OAuthToken.objects.get(), OAuthToken.objects.get()

    assert [f["name"] for f in list_flows(first)] == ["Main"]
    assert [f["name"] for f in list_flows(second)] == ["Main"]

    stored = OAuthToken.objects.get()
    assert second.access_token == stored.access_token == first.access_token
    assert stored.expires_at > timezone.now() + timedelta(minutes=30)


def test_configure_without_flowdock_parameters_is_404_not_a_hand_made_source(
    db, client, django_user_model
):
    Source.objects.create(name="By hand", flow_token="secret-token")  # no Flowdock ids
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))

    response = client.get("/flowdock/configure/")

    assert response.status_code == 404
    assert "By hand" not in response.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not connection.features.has_select_for_update,
    reason="serialising a double submit needs row locks (PostgreSQL); SQLite has none",
)
def test_confirm_sent_twice_at_once_creates_one_source(django_user_model, sandbox):
    """A double click on "Connect": both requests carry the same connection attempt;
    only one source may be created, here and in Flowdock."""
    application = OAuthApplication.objects.create(
        name="Helpdesk", client_id=sandbox.client_id, client_secret=sandbox.client_secret
    )
    first = Client()
    first.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    flow = sandbox.credentials["flow"]
    first.get(
        CALLBACK, consent(start(first, f"/flowdock/setup/{application.pk}/?flow={flow['id']}"))
    )
    second = Client()
    second.cookies = first.cookies
    # The first request's creation is slow, so the second arrives while it runs.
    sandbox.inject_fault(
        latency=1.0, path=f"/flows/{flow['organization']}/{flow['parameterized_name']}/sources"
    )

    responses = {}

    def submit(name, client):
        try:
            responses[name] = client.post("/flowdock/setup/confirm/", {"name": "Helpdesk tickets"})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=("first", first))]
    threads[0].start()
    time.sleep(0.3)
    threads.append(threading.Thread(target=submit, args=("second", second)))
    threads[1].start()
    for thread in threads:
        thread.join(10)

    assert Source.objects.count() == 1
    assert [s["name"] for s in sandbox.sources()].count("Helpdesk tickets") == 1
    assert sorted(r.status_code for r in responses.values()) == [302, 400]


def test_token_with_an_exp_too_large_for_a_float_is_401_not_500(db, client):
    """The expiry is checked before the signature, so anyone can send this."""
    make_application()
    make_user()
    ticket = Ticket.objects.create(subject="Polish", state="open")
    request = signed(ticket, "Mark as solved")
    claims = {"sub": "77", "exp": 10**400, "signature": hashlib.sha256(request.body).hexdigest()}
    forged = jwt.encode(claims, "any-secret-of-the-attacker-0123456789", algorithm="HS256")

    response = post(client, request._replace(headers={**request.headers, "FLOWDOCK-TOKEN": forged}))

    assert response.status_code == 401, response.content
    assert "too far in the future" in response.json()["detail"]
    assert Ticket.objects.get(pk=ticket.pk).state == "open"


def test_configure_with_a_nul_byte_in_its_parameters_is_404_not_500(db, client, django_user_model):
    """PostgreSQL refuses NUL in text, so such a lookup raised DataError (a 500)."""
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))

    response = client.get("/flowdock/configure/", {"integration_id": "1\x00", "flow": "f"})

    assert response.status_code == 404
