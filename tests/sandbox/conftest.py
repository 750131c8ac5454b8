import copy
import json
import re

import pytest
import requests

# The request body of the curl command in Flowdock's integration quick start, verbatim
# except for the flow token, which the sandbox hands out.
QUICKSTART_CURL_BODY = """{
"flow_token": "be299b91fffe8e4124986b9b5b44dfc6",
  "event": "activity",
  "author": {
    "name": "Marty",
    "avatar": "https://avatars.githubusercontent.com/u/3017123?v=3"
  },
  "title": "updated ticket",
  "external_thread_id": "1234567",
  "thread": {
    "title": "Polish the flux capacitor",
    "fields": [{ "label": "Dustiness", "value": "5 - severe" }],
    "body": "The flux capacitor has been in storage for more than 30 years and it needs to be spick and span for the re-launch.",
    "external_url": "https://example.com/projects/bttf/tickets/1234567",
    "status": {
      "color": "green",
      "value": "open"
    }
  }
}"""  # noqa: E501


@pytest.fixture
def sandbox(flowdock_sandbox):
    """The session's sandbox, emptied of what earlier tests posted."""
    flowdock_sandbox.reset()
    return flowdock_sandbox


@pytest.fixture
def quickstart_body(sandbox):
    """The quick start's curl body with the sandbox's flow token, as text."""
    return QUICKSTART_CURL_BODY.replace("be299b91fffe8e4124986b9b5b44dfc6", sandbox.flow_token)


@pytest.fixture
def message(sandbox):
    """A fresh, valid message (the quick start's) as a dict to modify."""
    payload = json.loads(QUICKSTART_CURL_BODY)
    payload["flow_token"] = sandbox.flow_token
    return copy.deepcopy(payload)


@pytest.fixture
def api_auth(sandbox):
    """HTTP basic auth with the seeded user's API token, as Flowdock accepts it."""
    return (sandbox.credentials["user"]["api_token"], "")


def _submit_form(
    session: requests.Session, url: str, data: dict, action: str | None = None, **kwargs
) -> requests.Response:
    page = session.get(url, timeout=10)
    page.raise_for_status()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(
        action or url, data={**data, "csrfmiddlewaretoken": token}, timeout=10, **kwargs
    )


@pytest.fixture
def submit_form():
    """Submit a form of a sandbox page as a browser does: load the page, then POST.

    ``action`` is where the form posts, when not back to the page itself.
    """
    return _submit_form


OAUTH_REDIRECT_URI = "http://127.0.0.1:9/flowdock/callback"


@pytest.fixture
def oauth_token(sandbox):
    """``oauth_token("flow profile")``: an access token the sandbox user granted with
    that scope, through the consent page and the token endpoint."""

    def grant(scope):
        session = requests.Session()
        query = {
            "client_id": sandbox.client_id,
            "response_type": "code",
            "redirect_uri": OAUTH_REDIRECT_URI,
            "scope": scope,
            "state": "s",
        }
        url = f"{sandbox.url}/oauth/authorize"
        answer = _submit_form(
            session,
            f"{url}?{requests.compat.urlencode(query)}",
            {**query, "decision": "allow"},
            action=url,
            allow_redirects=False,
        )
        code = re.search(r"[?&]code=([^&]+)", answer.headers["Location"]).group(1)
        token = requests.post(
            f"{sandbox.url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": OAUTH_REDIRECT_URI,
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
            },
            headers={"Accept": "application/json"},
            timeout=10,
        )
        token.raise_for_status()
        return token.json()["access_token"]

    return grant


@pytest.fixture
def integration_token(oauth_token):
    return oauth_token("flow integration")
