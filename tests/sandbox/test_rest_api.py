"""Flows, threads, sources and user endpoints, with the API token as basic auth."""

import requests


def get(sandbox, path, auth, **kwargs):
    return requests.get(f"{sandbox.url}{path}", auth=auth, timeout=10, **kwargs)


def post_quickstart_message(sandbox, message, **changes):
    response = requests.post(f"{sandbox.url}/messages", json={**message, **changes}, timeout=10)
    assert response.status_code == 202, response.text


def test_flows_list_find_and_detail_describe_the_seeded_flow(sandbox, api_auth):
    flow = sandbox.credentials["flow"]

    listed = get(sandbox, "/flows", api_auth).json()
    everything = get(sandbox, "/flows/all", api_auth).json()
    found = get(sandbox, "/flows/find", api_auth, params={"id": flow["id"]}).json()
    detail = get(sandbox, "/flows/acme/main", api_auth).json()

    assert [item["id"] for item in listed] == [flow["id"]]
    assert everything == listed
    assert found == detail
    assert {key: value for key, value in detail.items() if key != "users"} == listed[0]
    assert [user["id"] for user in detail["users"]] == [sandbox.credentials["user"]["id"]]
    assert detail["links"]["sources"]["href"] == f"{sandbox.url}/flows/acme/main/sources"
    assert detail["parameterized_name"] == "main"
    assert detail["organization"]["parameterized_name"] == "acme"
    assert detail["url"] == f"{sandbox.url}/flows/acme/main" == flow["url"]


def test_unknown_flow_is_404(sandbox, api_auth):
    assert get(sandbox, "/flows/find", api_auth, params={"id": "nope"}).status_code == 404
    assert get(sandbox, "/flows/acme/nope", api_auth).status_code == 404


def test_user_endpoints_refuse_requests_without_credentials(sandbox):
    response = requests.get(f"{sandbox.url}/flows", timeout=10)

    assert response.status_code == 401
    assert "message" in response.json()


def test_wrong_api_token_is_401(sandbox):
    assert get(sandbox, "/flows", ("not-a-token", "")).status_code == 401


def test_user_endpoint_returns_the_api_tokens_user(sandbox, api_auth):
    user = get(sandbox, "/user", api_auth).json()

    assert user["id"] == sandbox.credentials["user"]["id"]
    assert user["email"] == sandbox.credentials["user"]["email"]
    assert {"name", "nick", "avatar"} <= user.keys()


def test_thread_endpoints_return_latest_state_and_timeline(sandbox, api_auth, message):
    post_quickstart_message(sandbox, message)
    closed = {**message["thread"], "status": {"value": "closed", "color": "grey"}}
    post_quickstart_message(sandbox, message, thread=closed)
    post_quickstart_message(sandbox, message, event="discussion", title="commented", thread=closed)

    [listed] = get(sandbox, "/flows/acme/main/threads", api_auth).json()
    detail = get(sandbox, f"/flows/acme/main/threads/{listed['id']}", api_auth).json()
    path = f"/flows/acme/main/threads/{listed['id']}/messages"
    timeline = get(sandbox, path, api_auth).json()
    discussions = get(sandbox, path, api_auth, params={"event": "discussion"}).json()

    assert detail == listed
    assert detail["status"] == {"value": "closed", "color": "grey"}
    assert (detail["activities"], detail["external_comments"]) == (2, 1)
    assert [m["event"] for m in timeline] == ["activity", "activity", "discussion"]
    assert [m["id"] for m in timeline] == sorted(m["id"] for m in timeline)
    assert [m["title"] for m in discussions] == ["commented"]


def test_unknown_thread_is_404(sandbox, api_auth):
    assert get(sandbox, "/flows/acme/main/threads/nope", api_auth).status_code == 404


def test_created_source_shows_its_flow_token_only_once(sandbox, api_auth, integration_token):
    created = requests.post(
        f"{sandbox.url}/flows/acme/main/sources",
        json={"name": "Bug tracker", "external_url": "https://bugs.example.com/p/1"},
        headers={"Authorization": f"Bearer {integration_token}"},
        timeout=10,
    )

    assert created.status_code == 201
    source = created.json()
    assert len(source["flow_token"]) == 32
    assert source["url"] == f"{sandbox.url}/flows/acme/main/sources/{source['id']}"
    assert {"id", "name", "created_at", "updated_at", "application", "creator"} <= source.keys()
    listed = get(sandbox, "/flows/acme/main/sources", api_auth).json()
    fetched = get(sandbox, f"/flows/acme/main/sources/{source['id']}", api_auth).json()
    everywhere = get(sandbox, "/sources", api_auth).json()
    assert source["id"] in [item["id"] for item in listed]
    assert fetched["name"] == "Bug tracker"
    assert all("flow_token" not in item for item in [*listed, fetched, *everywhere])
    new_token_post = requests.post(
        f"{sandbox.url}/messages",
        json={
            "flow_token": source["flow_token"],
            "event": "activity",
            "author": {"name": "Bot"},
            "title": "opened bug",
            "external_thread_id": "bug-1",
            "thread": {"title": "It crashes"},
        },
        timeout=10,
    )
    assert new_token_post.status_code == 202


def test_source_creation_with_an_api_token_is_403(sandbox, api_auth):
    response = requests.post(
        f"{sandbox.url}/flows/acme/main/sources", json={"name": "x"}, auth=api_auth, timeout=10
    )

    assert response.status_code == 403
    assert "integration" in response.json()["message"]


def test_source_without_a_name_is_a_validation_error(sandbox, integration_token):
    response = requests.post(
        f"{sandbox.url}/flows/acme/main/sources",
        json={},
        headers={"Authorization": f"Bearer {integration_token}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"name": ["can't be blank"]}


def test_source_error_message_and_configuration_url_show_on_sources_page(sandbox, api_auth):
    source_id = sandbox.credentials["source"]["id"]
    response = requests.put(
        f"{sandbox.url}/flows/acme/main/sources/{source_id}",
        json={
            "error_message": "Authorization expired: reconnect the flow",
            "configuration_url": "https://app.example.com/flowdock/configure/7",
        },
        auth=api_auth,
        timeout=10,
    )

    assert response.status_code == 200
    assert response.json()["error_message"] == "Authorization expired: reconnect the flow"
    page = requests.get(f"{sandbox.url}/app/acme/main/sources", timeout=10).text
    assert "Authorization expired: reconnect the flow" in page
    assert 'class="alert source-error"' in page
    assert 'href="https://app.example.com/flowdock/configure/7"' in page
    inbox = requests.get(sandbox.credentials["flow"]["web_url"], timeout=10).text
    assert "Authorization expired: reconnect the flow" in inbox


def test_put_sources_with_flow_token_updates_and_clears_the_error(sandbox):
    def put(error_message):
        return requests.put(
            f"{sandbox.url}/sources",
            data={"flow_token": sandbox.flow_token, "error_message": error_message},
            timeout=10,
        )

    assert put("Webhook failing").json()["error_message"] == "Webhook failing"
    assert put("").json()["error_message"] == ""
    [seeded] = [s for s in sandbox.sources() if s["id"] == sandbox.credentials["source"]["id"]]
    assert seeded["error_message"] == ""


def test_flow_token_sees_only_its_own_source(sandbox):
    sandbox.create_source("Someone else's")

    visible = requests.get(
        f"{sandbox.url}/sources", params={"flow_token": sandbox.flow_token}, timeout=10
    ).json()

    assert [source["id"] for source in visible] == [sandbox.credentials["source"]["id"]]


def test_deleted_source_answers_204_then_its_token_answers_410(sandbox, api_auth, message):
    source = sandbox.create_source("Short-lived")
    path = f"/flows/acme/main/sources/{source['id']}"

    deleted = requests.delete(f"{sandbox.url}{path}", auth=api_auth, timeout=10)

    assert deleted.status_code == 204
    gone = requests.post(
        f"{sandbox.url}/messages", json={**message, "flow_token": source["flow_token"]}, timeout=10
    )
    assert gone.status_code == 410
    assert get(sandbox, path, api_auth).status_code == 404
    assert [s["removed"] for s in sandbox.sources() if s["id"] == source["id"]] == [True]
