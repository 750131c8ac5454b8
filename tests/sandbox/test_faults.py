"""Fault injection: status answers, latency, dropped connections, ratios, the UI panel."""

import time

import pytest
import requests


def post(sandbox, message):
    return requests.post(f"{sandbox.url}/messages", json=message, timeout=10)


def test_status_fault_answers_the_next_n_posts_then_lets_them_through(sandbox, message):
    sandbox.inject_fault(status=503, count=2)

    statuses = [post(sandbox, message).status_code for _ in range(3)]

    assert statuses == [503, 503, 202]
    assert len(sandbox.messages()) == 1
    assert sandbox.faults() == []


def test_status_fault_answers_json_and_can_send_retry_after(sandbox, message):
    sandbox.inject_fault(status=429, retry_after=7)

    response = post(sandbox, message)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert "message" in response.json()


def test_latency_fault_delays_the_answer_but_delivers(sandbox, message):
    sandbox.inject_fault(latency=0.6)

    started = time.monotonic()
    response = post(sandbox, message)

    assert time.monotonic() - started >= 0.6
    assert response.status_code == 202
    assert len(sandbox.messages()) == 1


def test_latency_beyond_the_client_timeout_times_out(sandbox, message):
    sandbox.inject_fault(latency=1.5)

    with pytest.raises(requests.Timeout):
        requests.post(f"{sandbox.url}/messages", json=message, timeout=0.5)


def test_reset_waits_for_a_slowed_request_so_it_cannot_land_afterwards(sandbox, message):
    sandbox.inject_fault(latency=1.0)
    with pytest.raises(requests.Timeout):
        requests.post(f"{sandbox.url}/messages", json=message, timeout=0.2)

    sandbox.reset()  # the slowed post is still being handled by the sandbox

    time.sleep(1.2)  # past the slowed post's second: had it landed, it would show now
    assert sandbox.messages() == []


def test_drop_fault_closes_the_connection_without_an_answer(sandbox, message):
    sandbox.inject_fault(drop=True)

    with pytest.raises(requests.ConnectionError):
        post(sandbox, message)

    assert sandbox.messages() == []
    assert post(sandbox, message).status_code == 202


def test_ratio_fault_fails_a_fixed_share_in_a_repeatable_pattern(sandbox, message):
    sandbox.inject_fault(status=500, ratio=0.5)

    statuses = [post(sandbox, message).status_code for _ in range(6)]

    assert statuses == [500, 202, 500, 202, 500, 202]
    [fault] = sandbox.faults()
    assert (fault["matched"], fault["fired"]) == (6, 3)
    sandbox.clear_faults()
    assert post(sandbox, message).status_code == 202


def test_fault_only_affects_its_path(sandbox, message, api_auth):
    sandbox.inject_fault(status=502, path="/flows")

    assert post(sandbox, message).status_code == 202
    flows = requests.get(f"{sandbox.url}/flows/acme/main", auth=api_auth, timeout=10)
    assert flows.status_code == 502


def test_control_endpoints_are_never_faulted(sandbox):
    sandbox.inject_fault(status=500, path="/", ratio=1)

    assert sandbox.threads() == []
    sandbox.clear_faults()


def test_reset_clears_faults(sandbox, message):
    sandbox.inject_fault(status=500, count=5)

    sandbox.reset()

    assert post(sandbox, message).status_code == 202


def test_fault_without_an_effect_is_refused(sandbox):
    with pytest.raises(RuntimeError, match="status, a latency or drop"):
        sandbox.inject_fault()


def test_faults_panel_adds_and_clears_faults(sandbox, message, submit_form):
    panel = f"{sandbox.url}/app/faults"
    session = requests.Session()

    added = submit_form(session, panel, {"do": "add", "path": "/messages", "status": "504"})

    assert added.status_code == 200
    assert "HTTP 504" in added.text
    assert post(sandbox, message).status_code == 504
    submit_form(session, panel, {"do": "add", "status": "500", "count": "3"})
    cleared = submit_form(session, panel, {"do": "clear"})
    assert "No faults" in cleared.text
    assert post(sandbox, message).status_code == 202


def test_removing_a_source_in_the_ui_makes_its_token_answer_410(sandbox, message, submit_form):
    sources_page = f"{sandbox.url}/app/acme/main/sources"
    source_id = sandbox.credentials["source"]["id"]

    removed = submit_form(
        requests.Session(), sources_page, {}, action=f"{sources_page}/{source_id}/remove"
    )

    assert removed.status_code == 200
    assert "removed" in removed.text
    assert post(sandbox, message).status_code == 410
