"""The sandbox is safe to leave running on a laptop: a web page the developer visits
cannot steer its control plane, another host name reads nothing, and its secret key
is its own, kept beside its database."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import requests

from django_flowdock.sandbox.launch import sandbox_environment
from django_flowdock.sandbox.testing import SandboxServer

FOREIGN = {"Origin": "https://attacker.example"}


def control_requests(sandbox):
    source_id = sandbox.credentials["source"]["id"]
    return [
        ("POST", f"/_sandbox/sources/{source_id}/revoke", {}),
        ("POST", "/_sandbox/reset", {}),
        ("POST", "/_sandbox/faults", {"status": "500", "count": "5"}),
        ("POST", "/_sandbox/sources", {"name": "Planted"}),
        ("DELETE", "/_sandbox/faults", None),
    ]


def state(sandbox):
    return sandbox.sources(), sandbox.faults(), sandbox.threads()


def test_control_requests_without_the_control_header_are_403_and_change_nothing(sandbox, message):
    requests.post(f"{sandbox.url}/messages", json=message, timeout=10).raise_for_status()
    sandbox.inject_fault(status=503, path="/flows")
    before = state(sandbox)

    for method, path, form in control_requests(sandbox):
        # What a cross-site form can send: form fields, a foreign Origin, no header.
        response = requests.request(
            method, sandbox.url + path, data=form, headers=FOREIGN, timeout=10
        )
        assert response.status_code == 403, (path, response.text)
        assert "X-Sandbox-Control" in response.json()["message"]

    assert state(sandbox) == before
    assert requests.post(f"{sandbox.url}/messages", json=message, timeout=10).status_code == 202


def test_control_header_from_another_origin_is_403(sandbox):
    response = requests.post(
        f"{sandbox.url}/_sandbox/reset", headers={**FOREIGN, "X-Sandbox-Control": "1"}, timeout=10
    )
    assert response.status_code == 403


def test_scripts_and_same_origin_pages_with_the_header_steer_it(sandbox):
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"status": 500},
        headers={"X-Sandbox-Control": "1", "Origin": sandbox.url},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert requests.get(f"{sandbox.url}/_sandbox/faults", timeout=10).json()[0]["status"] == 500


def test_cross_site_form_post_in_a_browser_cannot_revoke_the_source(sandbox, browser_page):
    source_id = sandbox.credentials["source"]["id"]
    browser_page.set_content(
        f'<form method="post" action="{sandbox.url}/_sandbox/sources/{source_id}/revoke">'
        '<input name="x" value="1"><button id="go">Win a prize</button></form>'
    )
    with browser_page.expect_navigation():
        browser_page.click("#go")

    assert "X-Sandbox-Control" in browser_page.content()
    [seed] = [s for s in sandbox.sources() if s["id"] == source_id]
    assert not seed["removed"]


@pytest.mark.parametrize("path", ["/_sandbox/credentials", "/flows", "/app/acme/main"])
def test_foreign_host_header_is_400_and_reveals_nothing(sandbox, path):
    response = requests.get(
        sandbox.url + path, headers={"Host": "attacker.example"}, auth=("x", ""), timeout=10
    )
    assert response.status_code == 400
    assert sandbox.client_secret not in response.text
    assert sandbox.flow_token not in response.text


def test_the_names_it_was_started_for_are_served(sandbox):
    port = sandbox.url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "localhost"):
        response = requests.get(
            f"{sandbox.url}/_sandbox/credentials", headers={"Host": f"{host}:{port}"}, timeout=10
        )
        assert response.status_code == 200


def settings_secret_key(db) -> str:
    """SECRET_KEY as the sandbox's settings load it for ``db``, in a fresh process."""
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    env = {
        **sandbox_environment(),
        "DJANGO_SETTINGS_MODULE": "django_flowdock.sandbox.settings",
        "FLOWDOCK_SANDBOX_DB": str(db),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_secret_key_is_random_and_kept_beside_the_database(tmp_path):
    db = tmp_path / "sandbox.sqlite3"
    key_file = tmp_path / "sandbox.sqlite3.secret-key"
    with SandboxServer.start(db=db):
        key = key_file.read_text()
    assert len(key) >= 50
    assert key != "flowdock-sandbox-development-only"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert settings_secret_key(db) == key

    with SandboxServer.start(db=db):
        assert key_file.read_text() == key  # the same sandbox keeps its key

    other = tmp_path / "other" / "sandbox.sqlite3"
    other.parent.mkdir()
    assert settings_secret_key(other) not in ("", key)
