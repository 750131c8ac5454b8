"""What a user (API token or OAuth bearer) does through the REST API: chat messages,
threaded messages, comments, statuses, files, listings, and the scope table."""

import base64

import pytest
import requests


def user_post(sandbox, path, auth, **kwargs):
    return requests.post(f"{sandbox.url}{path}", auth=auth, timeout=10, **kwargs)


def get(sandbox, path, auth, **kwargs):
    return requests.get(f"{sandbox.url}{path}", auth=auth, timeout=10, **kwargs)


@pytest.fixture
def flow_id(sandbox):
    return sandbox.credentials["flow"]["id"]


def test_chat_message_with_api_token_answers_201_with_the_documented_fields(
    sandbox, api_auth, flow_id
):
    response = user_post(
        sandbox,
        "/messages",
        api_auth,
        json={"flow": flow_id, "event": "message", "content": "Howdy-Doo @sandbox #awesome"},
    )

    assert response.status_code == 201, response.text
    message = response.json()
    user_id = sandbox.credentials["user"]["id"]
    assert message["event"] == "message"
    assert message["content"] == "Howdy-Doo @sandbox #awesome"
    assert message["user"] == str(user_id)
    assert message["app"] == "chat"
    assert message["edited"] is None
    assert message["attachments"] == []
    assert {"id", "sent", "uuid", "flow", "created_at", "thread_id"} <= message.keys()
    assert message["thread"]["id"] == message["thread_id"]
    assert {f":user:{user_id}", "awesome"} <= set(message["tags"])


def test_tags_are_normalised_as_the_tags_page_describes(sandbox, api_auth, flow_id):
    response = user_post(
        sandbox,
        "/messages",
        api_auth,
        json={
            "flow": flow_id,
            "event": "message",
            "content": "see http://example.com",
            "tags": "#Cool,cool,@all,todo",
        },
    )

    tags = response.json()["tags"]
    assert "Cool" in tags and "cool" not in tags  # case-insensitive, first spelling kept
    assert ":user:everyone" in tags
    assert ":url" in tags
    assert "todo" in tags


def test_content_longer_than_8096_characters_is_a_validation_error(sandbox, api_auth, flow_id):
    response = user_post(
        sandbox,
        "/messages",
        api_auth,
        json={"flow": flow_id, "event": "message", "content": "x" * 8097},
    )

    assert response.status_code == 400
    assert response.json() == {
        "message": "Validation error",
        "errors": {"content": ["is too long (maximum is 8096 characters)"]},
    }


def test_user_post_without_flow_is_a_validation_error(sandbox, api_auth):
    response = user_post(sandbox, "/messages", api_auth, json={"event": "message", "content": "hi"})

    assert response.status_code == 400
    assert response.json()["errors"] == {"flow": ["can't be blank"]}


def test_threaded_message_joins_the_thread_and_counts_as_internal_comment(
    sandbox, api_auth, flow_id, message
):
    requests.post(f"{sandbox.url}/messages", json=message, timeout=10).raise_for_status()
    thread_id = sandbox.threads()[0]["id"]

    in_body = user_post(
        sandbox,
        "/messages",
        api_auth,
        json={"flow": flow_id, "thread_id": thread_id, "event": "message", "content": "On it"},
    )
    in_path = user_post(
        sandbox,
        f"/flows/acme/main/threads/{thread_id}/messages",
        api_auth,
        json={"event": "message", "content": "Done"},
    )

    assert (in_body.status_code, in_path.status_code) == (201, 201)
    assert in_path.json()["thread_id"] == thread_id
    thread = get(sandbox, f"/flows/acme/main/threads/{thread_id}", api_auth).json()
    assert (thread["activities"], thread["internal_comments"]) == (1, 2)


def test_comment_on_a_message_carries_title_text_and_influx_tag(sandbox, api_auth, flow_id):
    parent = user_post(
        sandbox,
        "/messages",
        api_auth,
        json={"flow": flow_id, "event": "message", "content": "Lunch?"},
    ).json()

    by_body = user_post(
        sandbox,
        "/comments",
        api_auth,
        json={"flow": flow_id, "message": parent["id"], "event": "comment", "content": "Yes"},
    )
    by_path = user_post(
        sandbox,
        f"/flows/acme/main/messages/{parent['id']}/comments",
        api_auth,
        json={"content": "Pizza"},
    )

    assert (by_body.status_code, by_path.status_code) == (201, 201)
    comment = by_body.json()
    assert comment["event"] == "comment"
    assert comment["content"] == {"title": "Lunch?", "text": "Yes"}
    assert f"influx:{parent['id']}" in comment["tags"]
    assert comment["thread_id"] == parent["thread_id"]


def test_comment_on_a_comment_is_refused(sandbox, api_auth, flow_id):
    parent = user_post(
        sandbox, "/messages", api_auth, json={"flow": flow_id, "event": "message", "content": "a"}
    ).json()
    comment = user_post(
        sandbox,
        "/comments",
        api_auth,
        json={"flow": flow_id, "message": parent["id"], "content": "b"},
    ).json()

    response = user_post(
        sandbox,
        "/comments",
        api_auth,
        json={"flow": flow_id, "message": comment["id"], "content": "c"},
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"message": ["is invalid"]}


def test_status_sets_the_users_status_in_the_flow(sandbox, api_auth, flow_id):
    response = user_post(
        sandbox,
        "/messages",
        api_auth,
        json={"flow": flow_id, "event": "status", "content": "Testing"},
    )

    assert response.status_code == 201
    assert response.json()["event"] == "status"
    flow = get(sandbox, "/flows/acme/main", api_auth).json()
    assert flow["users"][0]["status"] == "Testing"


def test_file_upload_multipart_is_stored_and_served_through_a_redirect(sandbox, api_auth):
    response = user_post(
        sandbox,
        "/flows/acme/main/messages",
        api_auth,
        data={"event": "file"},
        files={"content": ("notes.txt", b"flux capacitor notes", "text/plain")},
    )

    assert response.status_code == 201, response.text
    message = response.json()
    [attachment] = message["attachments"]
    assert message["content"] == attachment
    assert (attachment["file_name"], attachment["file_size"]) == ("notes.txt", 20)
    assert ":file" in message["tags"]
    download = get(sandbox, attachment["path"], api_auth, allow_redirects=False)
    assert download.status_code == 302
    assert requests.get(f"{sandbox.url}{download.headers['Location']}", timeout=10).content == (
        b"flux capacitor notes"
    )


def test_inbox_attachments_multipart_with_cid_are_kept(sandbox):
    response = requests.post(
        f"{sandbox.url}/messages",
        data={
            "flow_token": sandbox.flow_token,
            "event": "activity",
            "author[name]": "Uploaded",
            "title": "Upload a file",
            "body": 'test <img src="cid:file1">',
            "thread[title]": "Thread title",
            "external_thread_id": "asdfasdf",
        },
        files={"attachments[file1]": ("local.png", b"\x89PNG fake", "image/png")},
        headers={"Accept": "application/json", "X-flowdock-wait-for-message": "1"},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    [attachment] = response.json()["attachments"]
    assert attachment["content_id"] == "file1"
    assert attachment["content_type"] == "image/png"


def test_inbox_attachments_as_base64_json_are_kept(sandbox, message):
    message["attachments"] = {
        "doc": {"data": base64.b64encode(b"hello").decode(), "file_name": "a.txt"}
    }

    response = requests.post(
        f"{sandbox.url}/messages",
        json=message,
        headers={"X-flowdock-wait-for-message": "1"},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    assert [a["file_name"] for a in response.json()["attachments"]] == ["a.txt"]


def test_attachments_on_chat_messages_are_refused(sandbox, api_auth, flow_id):
    response = user_post(
        sandbox,
        "/messages",
        api_auth,
        json={
            "flow": flow_id,
            "event": "message",
            "content": "x",
            "attachments": [{"data": "aGk="}],
        },
    )

    assert response.status_code == 400
    assert "attachments" in response.json()["errors"]


def test_message_list_filters_by_event_tags_and_ids_and_pages_with_limit(
    sandbox, api_auth, flow_id
):
    ids = [
        user_post(
            sandbox,
            "/messages",
            api_auth,
            json={"flow": flow_id, "event": "message", "content": f"m{n}", "tags": tags},
        ).json()["id"]
        for n, tags in enumerate([["a"], ["a", "b"], ["b"], []])
    ]

    def listed(**params):
        return [
            m["id"]
            for m in get(sandbox, "/flows/acme/main/messages", api_auth, params=params).json()
        ]

    assert listed() == ids
    assert listed(limit=2) == ids[2:]
    assert listed(limit=2, sort="asc") == ids[:2]
    assert listed(since_id=ids[1]) == ids[2:]
    assert listed(until_id=ids[2]) == ids[:2]
    assert listed(tags="a,b") == [ids[1]]
    assert listed(tags="a,b", tag_mode="or") == ids[:3]
    assert listed(event="status") == []
    assert listed(search="m3") == [ids[3]]
    # Parameters sent as a JSON body on GET, as some clients do, count too.
    body = get(sandbox, "/flows/acme/main/messages", api_auth, json={"limit": 1}).json()
    assert [m["id"] for m in body] == [ids[3]]


def test_editing_a_message_sets_edited(sandbox, api_auth, flow_id):
    created = user_post(
        sandbox,
        "/messages",
        api_auth,
        json={"flow": flow_id, "event": "message", "content": "tpyo"},
    ).json()
    path = f"/flows/acme/main/messages/{created['id']}"

    edited = requests.put(
        f"{sandbox.url}{path}", auth=api_auth, json={"content": "typo"}, timeout=10
    )

    assert (edited.status_code, edited.json()) == (200, {})
    shown = get(sandbox, path, api_auth).json()
    assert shown["content"] == "typo"
    assert isinstance(shown["edited"], int)


def test_thread_list_filters_by_date_and_application_and_links_the_next_page(
    sandbox, api_auth, message, flow_id
):
    for n in range(3):
        item = {**message, "external_thread_id": f"t{n}", "thread": {"title": f"T{n}"}}
        requests.post(f"{sandbox.url}/messages", json=item, timeout=10).raise_for_status()
    user_post(
        sandbox, "/messages", api_auth, json={"flow": flow_id, "event": "message", "content": "c"}
    )

    first = get(sandbox, "/flows/acme/main/threads", api_auth, params={"limit": 2})
    everything = get(sandbox, "/flows/acme/main/threads", api_auth).json()
    inbox = get(
        sandbox, "/flows/acme/main/threads", api_auth, params={"application": "inbox"}
    ).json()
    chat = get(sandbox, "/flows/acme/main/threads", api_auth, params={"application": "chat"}).json()

    assert [t["title"] for t in inbox] == ["T2", "T1", "T0"]
    assert [t["title"] for t in chat] == ["c"]
    assert len(everything) == 4
    assert [t["title"] for t in first.json()] == ["c", "T2"]
    next_url = first.links["next"]["url"]
    assert "until=" in next_url
    rest = requests.get(next_url, auth=api_auth, timeout=10).json()
    assert [t["title"] for t in rest] == ["T1", "T0"]
    since = get(
        sandbox,
        "/flows/acme/main/threads",
        api_auth,
        params={"since": inbox[1]["updated_at"], "application": "inbox"},
    ).json()
    assert [t["title"] for t in since] == ["T2"]
    assert "external_thread_id" not in inbox[0]
    assert inbox[0]["source"]["application"] == sandbox.credentials["application"]["name"]


def test_bearer_token_needs_scope_flow_to_post_and_works_in_the_query_string(
    sandbox, oauth_token, flow_id
):
    profile_only = oauth_token("profile")
    flow = oauth_token("flow")
    body = {"flow": flow_id, "event": "message", "content": "hi"}

    refused = requests.post(
        f"{sandbox.url}/messages",
        json=body,
        headers={"Authorization": f"Bearer {profile_only}"},
        timeout=10,
    )
    accepted = requests.post(
        f"{sandbox.url}/messages", json=body, params={"access_token": flow}, timeout=10
    )

    assert refused.status_code == 403
    assert refused.json() == {"message": "This endpoint requires the OAuth scope 'flow'."}
    assert accepted.status_code == 201


@pytest.mark.parametrize(
    ("path", "scope", "allowed"),
    [
        ("/flows", "flow", True),
        ("/flows", "integration", True),
        ("/flows", "profile", False),
        ("/user", "profile", True),
        ("/user", "flow", False),
        ("/flows/acme/main/threads", "integration", False),
        ("/sources", "integration", True),
    ],
)
def test_scope_table_is_enforced(sandbox, oauth_token, path, scope, allowed):
    response = requests.get(
        f"{sandbox.url}{path}", params={"access_token": oauth_token(scope)}, timeout=10
    )

    assert response.status_code == (200 if allowed else 403), response.text


def test_unknown_access_token_is_401_with_a_message(sandbox):
    response = requests.get(f"{sandbox.url}/flows", params={"access_token": "nope"}, timeout=10)

    assert response.status_code == 401
    assert response.json() == {"message": "Invalid or expired access token."}


def test_users_lists_the_flows_users(sandbox, api_auth):
    users = get(sandbox, "/flows/acme/main/users", api_auth).json()

    assert [user["nick"] for user in users] == ["sandbox"]
    assert get(sandbox, "/users", api_auth).json() == users
