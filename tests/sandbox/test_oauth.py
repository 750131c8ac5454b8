"""OAuth 2.0 authorization code flow against the sandbox's consent page."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

REDIRECT_URI = "http://127.0.0.1:9/flowdock/callback"


@pytest.fixture
def consent(sandbox, submit_form):
    """Answer the consent page; returns the query of the redirect back to the app."""

    def answer(scope="flow", state="xyz", decision="allow"):
        url = f"{sandbox.url}/oauth/authorize?" + requests.compat.urlencode(
            {
                "client_id": sandbox.client_id,
                "response_type": "code",
                "redirect_uri": REDIRECT_URI,
                "scope": scope,
                "state": state,
            }
        )
        response = submit_form(
            requests.Session(),
            url,
            {
                "client_id": sandbox.client_id,
                "response_type": "code",
                "redirect_uri": REDIRECT_URI,
                "scope": scope,
                "state": state,
                "decision": decision,
            },
            allow_redirects=False,
        )
        assert response.status_code == 302
        location = response.headers["Location"]
        assert location.startswith(REDIRECT_URI + "?")
        return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}

    return answer


def exchange(sandbox, data, **kwargs):
    return requests.post(f"{sandbox.url}/oauth/token", data=data, timeout=10, **kwargs)


def code_grant(sandbox, code):
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
    }


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_consent_page_names_the_application_and_scopes(sandbox):
    page = requests.get(
        f"{sandbox.url}/oauth/authorize",
        params={
            "client_id": sandbox.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "profile integration",
        },
        timeout=10,
    )

    assert page.status_code == 200
    assert sandbox.credentials["application"]["name"] in page.text
    assert 'data-scope="integration"' in page.text
    assert 'data-scope="profile"' in page.text


def test_allow_redirects_with_code_and_state_and_token_answer_is_form_encoded(sandbox, consent):
    answer = consent(scope="flow profile", state="s-1")

    assert answer["state"] == "s-1"
    response = exchange(sandbox, code_grant(sandbox, answer["code"]))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    token = {key: values[0] for key, values in parse_qs(response.text).items()}
    assert token["token_type"] == "bearer"
    assert token["scope"] == "flow,profile"  # comma-separated, as in the docs' example
    assert int(token["expires_in"]) > 0
    assert "refresh_token" not in token
    user = requests.get(f"{sandbox.url}/user", headers=bearer(token["access_token"]), timeout=10)
    assert user.json()["id"] == sandbox.credentials["user"]["id"]


def test_token_answer_is_json_when_asked_and_client_may_use_basic_auth(sandbox, consent):
    grant = code_grant(sandbox, consent()["code"])
    del grant["client_id"], grant["client_secret"]

    response = exchange(
        sandbox,
        grant,
        auth=(sandbox.client_id, sandbox.client_secret),
        headers={"Accept": "application/json"},
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["token_type"] == "bearer"


def test_deny_redirects_with_access_denied_and_state(consent):
    answer = consent(state="s-2", decision="deny")

    assert answer == {"error": "access_denied", "state": "s-2"}


def test_unknown_scope_redirects_with_invalid_scope(sandbox):
    response = requests.get(
        f"{sandbox.url}/oauth/authorize",
        params={
            "client_id": sandbox.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "flow everything",
            "state": "s-3",
        },
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {
        "error": ["invalid_scope"],
        "state": ["s-3"],
    }


def test_unknown_client_id_shows_an_error_page_instead_of_redirecting(sandbox):
    response = requests.get(
        f"{sandbox.url}/oauth/authorize",
        params={"client_id": "nope", "response_type": "code", "redirect_uri": REDIRECT_URI},
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 400
    assert "Unknown client_id" in response.text


def test_replayed_code_is_refused_and_revokes_the_token_it_issued(sandbox, consent):
    grant = code_grant(sandbox, consent()["code"])
    json_answer = {"Accept": "application/json"}
    first = exchange(sandbox, grant, headers=json_answer)

    replay = exchange(sandbox, grant, headers=json_answer)

    assert first.status_code == 200
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    user = requests.get(
        f"{sandbox.url}/user", headers=bearer(first.json()["access_token"]), timeout=10
    )
    assert user.status_code == 401


def test_wrong_client_secret_is_invalid_client(sandbox, consent):
    grant = {**code_grant(sandbox, consent()["code"]), "client_secret": "wrong"}

    response = exchange(sandbox, grant, headers={"Accept": "application/json"})

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}


def test_offline_access_grants_a_rotating_refresh_token(sandbox, consent):
    json_answer = {"Accept": "application/json"}
    grant = code_grant(sandbox, consent(scope="flow profile offline_access")["code"])
    first = exchange(sandbox, grant, headers=json_answer).json()
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
    }

    renewed = exchange(sandbox, refresh, headers=json_answer)
    reused = exchange(sandbox, refresh, headers=json_answer)

    assert renewed.status_code == 200
    assert renewed.json()["access_token"] != first["access_token"]
    assert renewed.json()["refresh_token"] != first["refresh_token"]
    assert renewed.json()["scope"] == "flow,profile,offline_access"
    user = requests.get(
        f"{sandbox.url}/user", headers=bearer(renewed.json()["access_token"]), timeout=10
    )
    assert user.status_code == 200
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_refresh_without_offline_access_is_refused(sandbox, consent):
    grant = code_grant(sandbox, consent(scope="flow")["code"])
    token = exchange(sandbox, grant, headers={"Accept": "application/json"}).json()

    response = exchange(
        sandbox,
        {
            "grant_type": "refresh_token",
            "refresh_token": token.get("refresh_token", ""),
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        headers={"Accept": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_creating_a_source_needs_the_integration_scope(sandbox, consent):
    def token_for(scope):
        grant = code_grant(sandbox, consent(scope=scope)["code"])
        return exchange(sandbox, grant, headers={"Accept": "application/json"}).json()

    def create_source(token):
        return requests.post(
            f"{sandbox.url}/flows/acme/main/sources",
            json={"name": "Connected project"},
            headers=bearer(token["access_token"]),
            timeout=10,
        )

    refused = create_source(token_for("flow profile"))
    created = create_source(token_for("flow integration"))

    assert refused.status_code == 403
    assert "integration" in refused.json()["message"]
    assert created.status_code == 201
    assert created.json()["application"]["name"] == sandbox.credentials["application"]["name"]
    assert created.json()["flow_token"]


def test_token_exchange_requires_the_redirect_uri(sandbox, consent):
    grant = code_grant(sandbox, consent()["code"])
    del grant["redirect_uri"]

    response = exchange(sandbox, grant, headers={"Accept": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_out_of_band_redirect_shows_the_code_in_the_url(sandbox, submit_form):
    query = {
        "client_id": sandbox.client_id,
        "response_type": "code",
        "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
        "scope": "flow",
    }
    url = f"{sandbox.url}/oauth/authorize"
    answer = submit_form(
        requests.Session(),
        f"{url}?{requests.compat.urlencode(query)}",
        {**query, "decision": "allow"},
        action=url,
        allow_redirects=False,
    )

    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith("/oauth/authorize/")
    code = location.rsplit("/", 1)[1]
    page = requests.get(f"{sandbox.url}{location}", timeout=10)
    assert f'<code id="authorization-code">{code}</code>' in page.text
    token = exchange(
        sandbox,
        {**code_grant(sandbox, code), "redirect_uri": "urn:ietf:wg:oauth:2.0:oob"},
        headers={"Accept": "application/json"},
    )
    assert token.status_code == 200
    assert token.json()["scope"] == "flow"
