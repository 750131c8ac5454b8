"""Starting, restarting and configuring the sandbox process."""

import argparse
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from django_flowdock.sandbox.options import add_arguments, to_argv
from django_flowdock.sandbox.testing import SandboxServer

CALLBACK = "http://127.0.0.1:9/flowdock/callback"
SETUP = "http://127.0.0.1:9/flowdock/setup"
CONFIGURE = "http://127.0.0.1:9/flowdock/configure"


@pytest.fixture(scope="module")
def registered_app(tmp_path_factory):
    """A sandbox whose application has all three URIs registered."""
    db = tmp_path_factory.mktemp("registered") / "sandbox.sqlite3"
    with SandboxServer.start(
        db=db, callback_uri=CALLBACK, setup_uri=SETUP, configuration_uri=CONFIGURE
    ) as server:
        yield server


def test_restart_keeps_the_seed_and_updates_uris_given_again(tmp_path):
    db = tmp_path / "sandbox.sqlite3"
    with SandboxServer.start(db=db, callback_uri=CALLBACK) as first:
        before = first.credentials
    with SandboxServer.start(db=db, setup_uri=SETUP) as second:
        after = second.credentials

    assert after["source"]["flow_token"] == before["source"]["flow_token"]
    assert after["flow"]["id"] == before["flow"]["id"]
    assert after["application"]["client_secret"] == before["application"]["client_secret"]
    assert after["application"]["callback_uri"] == CALLBACK
    assert after["application"]["setup_uri"] == SETUP


def test_start_prints_the_url_and_flow_token(flowdock_sandbox):
    log = flowdock_sandbox.log

    assert f"Flowdock sandbox running at {flowdock_sandbox.url}/" in log
    assert flowdock_sandbox.flow_token in log


def test_home_redirects_to_the_flows_inbox(flowdock_sandbox):
    response = requests.get(f"{flowdock_sandbox.url}/", allow_redirects=False, timeout=10)

    assert response.status_code == 302
    assert response.headers["Location"] == "/app/acme/main"


def test_authorize_refuses_a_redirect_uri_other_than_the_callback(registered_app):
    response = requests.get(
        f"{registered_app.url}/oauth/authorize",
        params={
            "client_id": registered_app.client_id,
            "response_type": "code",
            "redirect_uri": "https://evil.example/steal",
        },
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 400
    assert "does not match" in response.text


def test_authorize_defaults_to_the_registered_callback(registered_app):
    response = requests.get(
        f"{registered_app.url}/oauth/authorize",
        params={"client_id": registered_app.client_id, "response_type": "code", "state": "q"},
        timeout=10,
    )

    assert response.status_code == 200
    assert CALLBACK in response.text


def test_application_page_shows_uris_and_generates_the_setup_link(registered_app):
    flow = registered_app.credentials["flow"]
    page = requests.get(
        f"{registered_app.url}/app/applications/{registered_app.credentials['application']['id']}",
        params={"flow": flow["id"]},
        timeout=10,
    ).text

    for uri in (CALLBACK, SETUP, CONFIGURE):
        assert uri in page
    link = page.split('class="setup-link" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert link.startswith(SETUP + "?")
    assert parse_qs(urlsplit(link).query) == {"flow": [flow["id"]], "flow_url": [flow["url"]]}


def test_configure_link_falls_back_to_the_apps_configuration_uri(registered_app):
    page = requests.get(f"{registered_app.url}/app/acme/main/sources", timeout=10).text

    source = registered_app.credentials["source"]["id"]
    flow = registered_app.credentials["flow"]["id"]
    assert f'href="{CONFIGURE}?integration_id={source}&amp;flow={flow}"' in page


def test_manage_py_options_round_trip_to_the_sandbox_command_line():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--port", "0", "--db", ":memory:", "--app-setup-uri", SETUP]

    options = vars(parser.parse_args(argv))

    assert vars(parser.parse_args(to_argv(options))) == options
