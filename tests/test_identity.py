"""An unknown Flowdock user is sent to sign in; the claim link links them to the signed-in
Django user, once, for a short while; then their actions run as that user."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing

from django_flowdock.actions.identity import claim_url, read_claim
from django_flowdock.models import FlowdockUser
from tests.actions_support import FLOWDOCK_USER_ID, make_application, make_user, post, signed
from tests.testapp.models import Ticket


@pytest.fixture(autouse=True)
def setup(db, settings):
    settings.LOGIN_URL = "/admin/login/"
    make_application()


def challenge_url(response):
    assert response.status_code == 401, response.content
    scheme, _, url = response["WWW-Authenticate"].partition(" url=")
    assert scheme == "Flowdock-Token"
    return url


def test_unknown_flowdock_user_gets_401_with_a_claim_link(client):
    ticket = Ticket.objects.create(subject="Polish")
    response = post(client, signed(ticket, "Assign to me", agent_name="Marty in chat"))

    url = challenge_url(response)
    assert url.startswith("https://helpdesk.example/flowdock/identity/claim/?claim=")
    claim = read_claim(parse_qs(urlsplit(url).query)["claim"][0])
    assert (claim.flowdock_user_id, claim.name) == (FLOWDOCK_USER_ID, "Marty in chat")
    assert response.json()["detail"].startswith("Sign in to link your Flowdock account")
    assert Ticket.objects.get(pk=ticket.pk).assignee_id is None


def test_claim_page_requires_sign_in(client):
    response = client.get(claim_url("77", "Marty"))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/flowdock/identity/claim/")


def test_signed_in_user_confirms_and_later_actions_run_as_them(client):
    ticket = Ticket.objects.create(subject="Polish")
    url = challenge_url(post(client, signed(ticket, "Assign to me", agent_name="Marty")))
    user = make_user(link=False)
    client.force_login(user)

    page = client.get(url)
    assert page.status_code == 200
    assert b'data-state="confirm"' in page.content
    assert b"<strong>Marty</strong>" in page.content
    assert not FlowdockUser.objects.exists()  # a GET links nothing

    done = client.post(url)
    assert b'data-state="linked"' in done.content
    link = FlowdockUser.objects.get()
    assert (link.flowdock_user_id, link.user, link.name) == (FLOWDOCK_USER_ID, user, "Marty")

    client.logout()  # Flowdock's request carries no session
    assert post(client, signed(ticket, "Assign to me")).status_code == 200
    assert Ticket.objects.get(pk=ticket.pk).assignee == user


def test_claim_post_needs_a_csrf_token(db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(link=False))
    assert client.post(claim_url("77")).status_code == 403
    assert not FlowdockUser.objects.exists()


def test_claim_links_once(client):
    url = claim_url("77", "Marty")
    client.force_login(make_user(link=False))
    assert client.post(url).status_code == 200
    assert client.post(url).status_code == 200  # same user again: still linked, fine

    client.force_login(make_user("biff", link=False))
    response = client.post(url)
    assert response.status_code == 400
    assert b"already been used" in response.content
    assert FlowdockUser.objects.get().user.username == "marty"


def test_expired_claim_is_refused(client, monkeypatch, settings):
    monkeypatch.setattr(
        signing.TimestampSigner,
        "timestamp",
        lambda self: signing.b62_encode(
            int(time.time()) - settings.FLOWDOCK.get("CLAIM_MAX_AGE", 600) - 5
        ),
    )
    url = claim_url("77")
    monkeypatch.undo()
    client.force_login(make_user(link=False))
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 400
        assert b"expired" in response.content
    assert not FlowdockUser.objects.exists()


@pytest.mark.parametrize("claim", ["", "77", "eyJzdWIiOiI3NyJ9:1abc:forged"])
def test_tampered_claim_is_refused(client, claim):
    client.force_login(make_user(link=False))
    response = client.post("/flowdock/identity/claim/", query_params={"claim": claim})
    assert response.status_code == 400
    assert b"not valid" in response.content
    assert not FlowdockUser.objects.exists()


def test_relinking_moves_the_flowdock_user_to_the_new_account(client):
    make_user("old")  # linked to Flowdock user 77
    new = make_user("new", link=False)
    client.force_login(new)
    client.post(claim_url(FLOWDOCK_USER_ID))
    assert FlowdockUser.objects.get().user == new


def test_without_site_url_the_claim_link_uses_the_request_host(client, settings):
    # The button's URL on the host the request comes to, as a thread built in a
    # request to this host would carry it.
    ticket = Ticket.objects.create(subject="Polish")
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": "http://testserver"}
    request = signed(ticket, "Assign to me")
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": None}
    url = challenge_url(post(client, request))
    assert url.startswith("http://testserver/flowdock/identity/claim/?claim=")
