"""POST /messages: threads from the payload of Flowdock's integration quick start,
validation, auth, dedupe."""

import base64
import json
import shutil
import subprocess

import pytest
import requests

TOO_LONG = "is too long (maximum is 8096 characters)"


def post(sandbox, payload, **kwargs):
    return requests.post(f"{sandbox.url}/messages", json=payload, timeout=10, **kwargs)


def inbox_html(sandbox):
    response = requests.get(sandbox.credentials["flow"]["web_url"], timeout=10)
    response.raise_for_status()
    return response.text


def test_quickstart_curl_payload_creates_a_thread(sandbox, quickstart_body):
    response = requests.post(
        f"{sandbox.url}/messages",
        data=quickstart_body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 202
    assert response.json() == {}
    [thread] = sandbox.threads()
    assert thread["title"] == "Polish the flux capacitor"
    assert thread["external_thread_id"] == "1234567"
    assert thread["status"] == {"value": "open", "color": "green"}
    assert thread["fields"] == [{"label": "Dustiness", "value": "5 - severe"}]
    assert thread["external_url"] == "https://example.com/projects/bttf/tickets/1234567"
    assert thread["message_count"] == 1
    [message] = sandbox.messages()
    assert message["event"] == "activity"
    assert message["author"]["name"] == "Marty"
    assert message["title"] == "updated ticket"
    assert message["thread_id"] == thread["id"]
    html = inbox_html(sandbox)
    assert "Polish the flux capacitor" in html
    assert 'data-status-color="green"' in html
    assert "5 - severe" in html


def test_reposting_with_closed_grey_status_updates_the_thread_in_place(sandbox, quickstart_body):
    closed_body = quickstart_body.replace('"color": "green"', '"color": "grey"').replace(
        '"value": "open"', '"value": "closed"'
    )
    for body in (quickstart_body, closed_body):
        response = requests.post(
            f"{sandbox.url}/messages",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 202

    [thread] = sandbox.threads()
    assert thread["status"] == {"value": "closed", "color": "grey"}
    assert thread["message_count"] == 2
    first, second = sandbox.messages()
    assert first["thread"]["status"]["color"] == "green"
    assert second["thread"]["status"]["color"] == "grey"
    html = inbox_html(sandbox)
    assert 'data-status-color="grey"' in html
    assert 'data-status-color="green"' not in html
    assert html.count('class="message activity"') == 2


def test_form_data_with_rails_style_keys_creates_a_thread(sandbox):
    response = requests.post(
        f"{sandbox.url}/messages",
        data={
            "flow_token": sandbox.flow_token,
            "event": "activity",
            "author[name]": "Doc",
            "title": "created ticket",
            "external_thread_id": "form-1",
            "thread[title]": "Buy plutonium",
            "thread[status][value]": "blocked",
            "thread[status][color]": "red",
            "thread[fields][0][label]": "Priority",
            "thread[fields][0][value]": "high",
            "tags": "bttf,#urgent",
        },
        timeout=10,
    )

    assert response.status_code == 202, response.text
    [thread] = sandbox.threads()
    assert thread["status"] == {"value": "blocked", "color": "red"}
    assert thread["fields"] == [{"label": "Priority", "value": "high"}]
    assert sandbox.messages()[0]["tags"] == ["bttf", "urgent"]


def test_flow_token_is_accepted_in_the_query_string(sandbox, message):
    token = message.pop("flow_token")

    response = post(sandbox, message, params={"flow_token": token})

    assert response.status_code == 202


def basic(user_name):
    return "Basic " + base64.b64encode(f"{user_name}:".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "in_query"),
    [
        ("api token", False),
        # What node-flowdock's Session made without credentials sends.
        ("undefined", False),
        ("bearer", False),
        ("api token", True),
    ],
)
def test_a_flow_token_wins_over_an_authorization_header(sandbox, message, authorization, in_query):
    header = {
        "api token": basic(sandbox.credentials["user"]["api_token"]),
        "undefined": basic("undefined"),
        "bearer": "Bearer not-a-token",
    }[authorization]
    params = {"flow_token": message.pop("flow_token")} if in_query else None

    response = post(
        sandbox,
        message,
        params=params,
        headers={"Authorization": header, "X-flowdock-wait-for-message": "1"},
    )

    assert response.status_code == 200, response.text
    [created] = sandbox.messages()
    assert created["source_id"] == sandbox.credentials["source"]["id"]
    assert created["thread"]["title"] == "Polish the flux capacitor"


def test_wait_for_message_header_answers_200_with_the_created_message(sandbox, message):
    response = post(sandbox, message, headers={"X-flowdock-wait-for-message": "true"})

    assert response.status_code == 200
    created = response.json()
    assert isinstance(created["id"], int)
    assert created["event"] == "activity"
    assert created["thread"]["title"] == "Polish the flux capacitor"
    assert created["thread_id"] == sandbox.threads()[0]["id"]


def test_discussion_joins_the_existing_thread(sandbox, message):
    post(sandbox, message)
    discussion = {
        "flow_token": sandbox.flow_token,
        "event": "discussion",
        "author": {"name": "Doc"},
        "title": "commented",
        "body": "<p>Great Scott!</p>",
        "external_thread_id": "1234567",
        "thread": message["thread"],
    }

    assert post(sandbox, discussion).status_code == 202

    [thread] = sandbox.threads()
    assert thread["message_count"] == 2
    assert thread["external_comments"] == 1
    assert sandbox.messages(event="discussion")[0]["body"] == "<p>Great Scott!</p>"


def test_thread_id_posts_into_an_existing_thread(sandbox, message):
    post(sandbox, message)
    thread_id = sandbox.threads()[0]["id"]
    reply = {**message, "event": "discussion", "title": "commented", "thread_id": thread_id}
    del reply["external_thread_id"]

    assert post(sandbox, reply).status_code == 202
    assert sandbox.threads()[0]["message_count"] == 2


def _without(payload, *path):
    *parents, last = path
    node = payload
    for key in parents:
        node = node[key]
    del node[last]
    return payload


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        (lambda m: _without(m, "event"), "event", "can't be blank"),
        (lambda m: m.update(event="message"), "event", "is not included in the list"),
        (lambda m: _without(m, "author", "name"), "author.name", "can't be blank"),
        (lambda m: _without(m, "author"), "author", "can't be blank"),
        (lambda m: _without(m, "title"), "title", "can't be blank"),
        (lambda m: _without(m, "external_thread_id"), "external_thread_id", "can't be blank"),
        (lambda m: _without(m, "thread"), "thread", "can't be blank"),
        (lambda m: _without(m, "thread", "title"), "thread.title", "can't be blank"),
        (
            lambda m: m["thread"]["status"].update(color="pink"),
            "thread.status.color",
            "is not included in the list",
        ),
        (
            lambda m: m["thread"].update(fields=[{"name": "Dustiness"}]),
            "thread.fields.0.label",
            "can't be blank",
        ),
        (lambda m: m.update(thread=None), "thread", "can't be blank"),
        (lambda m: m["thread"].update(body="x" * 8097), "thread.body", TOO_LONG),
        (lambda m: m.update(body="x" * 8097), "body", TOO_LONG),
        (
            lambda m: m["thread"].update(actions=[{"@type": "UpdateAction", "name": "Go"}]),
            "thread.actions.0.target",
            "can't be blank",
        ),
    ],
)
def test_invalid_message_answers_400_naming_the_field(sandbox, message, change, field, error):
    change(message)

    response = post(sandbox, message)

    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Validation error"
    assert body["errors"][field] == [error]
    assert sandbox.messages() == []


def test_links_are_allowed_in_titles_and_field_values(sandbox, message):
    message["title"] = 'updated <a href="https://example.com/t/1">ticket</a>'
    message["thread"]["fields"][0]["value"] = '<a href="mailto:doc@example.com">Doc</a>'

    assert post(sandbox, message).status_code == 202


def test_other_markup_in_titles_and_field_values_is_accepted_and_shown_as_text(sandbox, message):
    message["title"] = "updated <b>ticket</b>"
    message["thread"]["fields"] = [{"label": "<em>Creator</em>", "value": "<em>Apua</em>"}]

    assert post(sandbox, message).status_code == 202

    html = inbox_html(sandbox)
    assert "<em>Apua</em>" not in html
    assert "Apua" in html
    assert sandbox.messages()[0]["title"] == "updated <b>ticket</b>"


def test_titles_and_labels_show_the_same_text_in_the_thread_list_and_the_thread(sandbox, message):
    # Escaped as django-flowdock escapes user text: the title holds "<b>" as text.
    message["thread"]["title"] = "Polish the &lt;b&gt;flux&lt;/b&gt; capacitor &amp; more"
    message["thread"]["fields"] = [{"label": "&lt;em&gt;Dust&lt;/em&gt;", "value": "5"}]
    post(sandbox, message)

    html = inbox_html(sandbox)

    escaped_once = "Polish the &lt;b&gt;flux&lt;/b&gt; capacitor &amp; more"
    assert f'<span class="item-title">{escaped_once}</span>' in html
    assert f'<h2 class="thread-title">{escaped_once}</h2>' in html
    assert "<th>&lt;em&gt;Dust&lt;/em&gt;</th>" in html
    assert "&amp;lt;" not in html


def test_links_in_titles_show_as_their_text_in_the_thread_list(sandbox, message):
    message["thread"]["title"] = 'Polish <a href="https://example.com/1">the capacitor</a>'
    post(sandbox, message)

    html = inbox_html(sandbox)

    assert '<span class="item-title">Polish the capacitor</span>' in html
    assert 'href="https://example.com/1"' in html.split('class="thread-title"', 1)[1]


def test_null_values_the_docs_samples_use_count_as_absent(sandbox, message):
    message.update(body=None, uuid=None, tags=None)
    message["thread"].update(body=None, external_url=None, actions=None, fields=None)
    message["author"]["avatar"] = None

    response = post(sandbox, message, headers={"X-flowdock-wait-for-message": "1"})

    assert response.status_code == 200, response.text
    created = response.json()
    assert created["body"] is None
    assert created["thread"]["body"] == ""
    assert created["tags"] == []


def test_unknown_flow_token_answers_401(sandbox, message):
    message["flow_token"] = "0" * 32

    response = post(sandbox, message)

    assert response.status_code == 401
    assert "message" in response.json()


def test_missing_flow_token_answers_401(sandbox, message):
    del message["flow_token"]

    assert post(sandbox, message).status_code == 401


def test_revoked_source_token_answers_410_and_stores_nothing(sandbox, message):
    sandbox.revoke_source(sandbox.credentials["source"]["id"])

    response = post(sandbox, message)

    assert response.status_code == 410
    assert "message" in response.json()
    assert sandbox.messages() == []


def test_repeated_uuid_is_kept_marked_and_leaves_the_thread_as_it_was(sandbox, message):
    message["uuid"] = "delivery-42"
    first = post(sandbox, message)
    message["thread"]["status"] = {"value": "closed", "color": "grey"}
    repeat = post(sandbox, message)

    assert (first.status_code, repeat.status_code) == (202, 202)
    original, again = sandbox.messages(include_repeats=True)
    assert (original["uuid"], again["uuid"]) == ("delivery-42", "delivery-42")
    assert (original["repeated"], again["repeated"]) == (False, True)
    assert [m["id"] for m in sandbox.messages()] == [original["id"]]
    assert sandbox.threads()[0]["status"]["color"] == "green"
    assert inbox_html(sandbox).count("posted again") == 1


def test_repeated_uuid_with_wait_header_returns_the_new_copy(sandbox, message):
    message["uuid"] = "delivery-43"
    headers = {"X-flowdock-wait-for-message": "1"}
    first = post(sandbox, message, headers=headers).json()
    repeat = post(sandbox, message, headers=headers).json()

    assert repeat["id"] > first["id"]
    assert repeat["uuid"] == first["uuid"]


def test_same_external_thread_id_in_two_sources_makes_two_threads(sandbox, message):
    other = sandbox.create_source("Other project")
    post(sandbox, message)
    post(sandbox, {**message, "flow_token": other["flow_token"]})

    assert len(sandbox.threads()) == 2


def test_inbox_renders_body_html_without_scripts(sandbox, message):
    message["thread"]["body"] = (
        '<p>Needs <strong>polish</strong></p><script>alert("x")</script>'
        '<a href="javascript:alert(1)">bad link</a><img src="x" onerror="alert(1)">'
    )
    post(sandbox, message)

    html = inbox_html(sandbox)

    body = html.split('body thread-body">', 1)[1].split("</div>", 1)[0]
    assert body.startswith("<p>Needs <strong>polish</strong></p>")
    assert "<script" not in body
    assert 'alert("x")' not in html
    assert "javascript:" not in body
    assert "onerror" not in body
    assert '<img src="x">' in body


def test_json_that_is_not_an_object_is_a_400(sandbox):
    response = requests.post(
        f"{sandbox.url}/messages",
        data=json.dumps(["not", "an", "object"]),
        headers={"Content-Type": "application/json"},
        params={"flow_token": sandbox.flow_token},
        timeout=10,
    )

    assert response.status_code == 400


@pytest.mark.skipif(not shutil.which("curl"), reason="the curl binary is not installed")
def test_the_quickstarts_exact_curl_command_creates_then_updates_the_thread(
    sandbox, quickstart_body
):
    # The quick start's command as written, with the sandbox's token and URL substituted.
    def curl(body):
        return subprocess.run(
            [
                "curl",
                "-i",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
                f"{sandbox.url}/messages",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    assert curl(quickstart_body).startswith("HTTP/1.1 202")
    closed = quickstart_body.replace('"color": "green"', '"color": "grey"').replace(
        '"value": "open"', '"value": "closed"'
    )
    assert curl(closed).startswith("HTTP/1.1 202")
    [thread] = sandbox.threads()
    assert thread["status"] == {"value": "closed", "color": "grey"}
    assert thread["message_count"] == 2
    assert 'data-status-color="grey"' in inbox_html(sandbox)
