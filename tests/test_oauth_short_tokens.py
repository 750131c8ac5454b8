"""Connecting a flow works whatever ``expires_in`` Flowdock grants, against a strict
stand-in (tests/oauth_api.py) over real HTTP that issues 2-second tokens by default and
writes scopes comma-separated, as Flowdock's docs show them."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from django_flowdock.api.sources import list_flows
from django_flowdock.exceptions import FlowdockOAuthError
from django_flowdock.models import OAuthApplication, OAuthToken, Source
from tests.oauth_api import CLIENT_ID, CLIENT_SECRET, FLOW, StrictOAuthServer

CALLBACK = "/flowdock/oauth/callback/"
CONFIRM = "/flowdock/setup/confirm/"


@pytest.fixture
def stand_in(request, settings):
    server = StrictOAuthServer(**getattr(request, "param", {}))
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": server.url}
    yield server
    server.stop()


@pytest.fixture
def signed_in(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ada", "ada@example.com", "pw"))
    return client


@pytest.fixture
def stand_in_application(db, stand_in):
    return OAuthApplication.objects.create(
        name="Helpdesk", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, offline_access=True
    )


def callback(client, stand_in_application):
    """Start at our Setup URI, consent at the stand-in, come back to the callback."""
    started = client.get(f"/flowdock/setup/{stand_in_application.pk}/?flow={FLOW['id']}&flow_url=x")
    assert started.status_code == 302, started.content
    consent = requests.get(started["Location"], allow_redirects=False, timeout=10)
    query = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["Location"]).query).items()}
    return client.get(CALLBACK, query)


def no_expired_token_was_used(stand_in) -> bool:
    return all(status != 401 for _, _, status in stand_in.requests)


@pytest.mark.parametrize(
    "stand_in",
    [
        {"lifetime": 0},
        {"lifetime": 1},
        {"lifetime": 2},
        {"lifetime": 0, "refresh": False},
        {"lifetime": 2, "refresh": False},
    ],
    ids=["0s", "1s", "2s", "0s-no-refresh-token", "2s-no-refresh-token"],
    indirect=True,
)
def test_tokens_shorter_than_the_refresh_margin_connect_a_flow(
    signed_in, stand_in_application, stand_in
):
    response = callback(signed_in, stand_in_application)

    assert response.status_code == 302, response.content
    assert response["Location"] == CONFIRM
    assert signed_in.post(CONFIRM, {"name": "Helpdesk"}).status_code == 302
    source = Source.objects.get()
    assert source.flowdock_id == "7"
    assert source.token.scope == "flow integration profile"
    # expires_in 0 states no expiry (oauthlib drops it); the others are stored.
    assert (source.token.expires_at is None) == (stand_in.lifetime == 0)
    assert no_expired_token_was_used(stand_in)


def test_two_second_token_that_expired_before_confirming_is_refreshed(
    signed_in, stand_in_application, stand_in
):
    assert callback(signed_in, stand_in_application).status_code == 302
    granted = OAuthToken.objects.get()
    time.sleep(stand_in.lifetime + 0.2)  # the user reads the confirmation page

    assert signed_in.post(CONFIRM, {"name": "Helpdesk"}).status_code == 302

    token = Source.objects.get().token
    assert token.access_token != granted.access_token
    assert token.refresh_token != granted.refresh_token  # rotated, and the new one kept
    assert token.scope == "flow integration profile"
    assert stand_in.statuses("/oauth/token").count(200) >= 2
    assert no_expired_token_was_used(stand_in)


@pytest.mark.parametrize("stand_in", [{"refresh": False}], indirect=True)
def test_two_second_token_without_refresh_token_is_used_until_it_expires(
    signed_in, stand_in_application, stand_in
):
    assert callback(signed_in, stand_in_application).status_code == 302
    assert signed_in.post(CONFIRM, {"name": "Helpdesk"}).status_code == 302
    token = Source.objects.get().token
    time.sleep(stand_in.lifetime + 0.2)  # the token expires: what is proven
    calls = len(stand_in.requests)

    with pytest.raises(FlowdockOAuthError, match="Connect the flow again"):
        list_flows(token)

    assert len(stand_in.requests) == calls  # an expired token is not even sent
    assert no_expired_token_was_used(stand_in)
