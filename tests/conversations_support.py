"""Helpers for the conversations tests: a source connected with a user's OAuth token,
and chat replies posted to the sandbox as a user would."""

from __future__ import annotations

import re

import requests

from django_flowdock.models import OAuthApplication, OAuthToken, Source

REDIRECT_URI = "http://127.0.0.1:9/flowdock/callback"


def grant(sandbox, scope: str = "flow") -> str:
    """An access token the sandbox user grants through the consent page."""
    session = requests.Session()
    query = {
        "client_id": sandbox.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "s",
    }
    url = f"{sandbox.url}/oauth/authorize"
    page = session.get(url, params=query, timeout=10)
    page.raise_for_status()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        url,
        data={**query, "decision": "allow", "csrfmiddlewaretoken": csrf},
        allow_redirects=False,
        timeout=10,
    )
    code = re.search(r"[?&]code=([^&]+)", answer.headers["Location"]).group(1)
    token = requests.post(
        f"{sandbox.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        headers={"Accept": "application/json"},
        timeout=10,
    )
    token.raise_for_status()
    return token.json()["access_token"]


def connect_source(sandbox, scope: str = "flow integration profile") -> Source:
    """The sandbox's source as the admin's "connect a flow" leaves it: flow token, flow
    id and path, and the OAuth grant."""
    application = OAuthApplication.objects.create(
        name="My Integration", client_id=sandbox.client_id, client_secret=sandbox.client_secret
    )
    token = OAuthToken.objects.create(
        application=application,
        access_token=grant(sandbox, scope),
        scope=scope,
        flowdock_user_id=str(sandbox.credentials["user"]["id"]),
    )
    flow = sandbox.credentials["flow"]
    return Source.objects.create(
        name="Helpdesk",
        flow_token=sandbox.flow_token,
        application=application,
        token=token,
        flow_id=flow["id"],
        flow_path=f"{flow['organization']}/{flow['parameterized_name']}",
    )


def reply(sandbox, thread_id: str, content: str) -> dict:
    """A chat message in the thread, posted with the user's API token."""
    flow = sandbox.credentials["flow"]
    response = requests.post(
        f"{sandbox.url}/flows/{flow['organization']}/{flow['parameterized_name']}"
        f"/threads/{thread_id}/messages",
        auth=(sandbox.credentials["user"]["api_token"], ""),
        json={"event": "message", "content": content},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()
