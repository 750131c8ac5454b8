"""Change detection, payload limits and client faults at their edges, each proven against
real parts (the sandbox or a small local server)."""

from __future__ import annotations

import pytest

from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message, Source
from tests.testapp.models import Reply, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hand_source(db):
    return Source.objects.create(name="Helpdesk", flow_token="token-1")


def bodies(outbox):
    return [m.get("body") for m in outbox]


# --- change detection -------------------------------------------------------------


def test_refresh_from_db_is_the_new_baseline_for_changes(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    Ticket.objects.filter(pk=ticket.pk).update(state="solved")  # another process
    ticket.refresh_from_db()
    ticket.priority = "high"
    ticket.save()
    # The state change was not made by this save: it must not be reported again.
    assert bodies(locmem)[-1] == "<ul><li>Priority: normal → high</li></ul>"


def test_change_to_a_deferred_field_is_reported(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    loaded = Ticket.objects.only("pk", "subject").get(pk=ticket.pk)
    loaded.state = "solved"
    loaded.save()
    assert [m["title"] for m in locmem] == ["created ticket", "updated ticket"]
    assert bodies(locmem)[-1] == "<ul><li>Status: open → solved</li></ul>"


def test_deferred_field_loaded_then_changed_is_reported(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    loaded = Ticket.objects.only("pk", "subject").get(pk=ticket.pk)
    assert loaded.state == "open"  # loads the deferred field
    loaded.state = "solved"
    loaded.save()
    assert bodies(locmem)[-1] == "<ul><li>Status: open → solved</li></ul>"


def test_update_fields_reports_and_shows_only_what_was_saved(locmem, hand_source):
    ticket = Ticket.objects.create(subject="Polish")
    ticket.state, ticket.subject = "solved", "Not saved"
    ticket.save(update_fields=["state"])
    assert bodies(locmem)[-1] == "<ul><li>Status: open → solved</li></ul>"
    assert locmem[-1]["thread"]["title"] == "Polish"
    # The subject is still unsaved: saving it later is a change.
    ticket.save()
    assert bodies(locmem)[-1] == "<ul><li>Title: Polish → Not saved</li></ul>"


# --- payloads ---------------------------------------------------------------------


def test_long_comment_with_many_lines_is_cut_to_fit_instead_of_failing_the_save(
    locmem, hand_source
):
    ticket = Ticket.objects.create(subject="Polish")
    text = "a & b <c>\n" * 1000  # 10,000 characters that grow when escaped
    Reply.objects.create(ticket=ticket, text=text)
    body = locmem[-1]["body"]
    assert len(body) <= 8096
    assert body.startswith("a &amp; b &lt;c&gt;<br>")


def test_long_description_that_grows_when_escaped_still_fits_the_thread_body(locmem, hand_source):
    Ticket.objects.create(subject="Polish", description="<&>\n" * 3000)
    assert len(locmem[-1]["thread"]["body"]) <= 8000


def test_missing_status_leaves_status_out_instead_of_failing_the_save(
    locmem, hand_source, monkeypatch
):
    monkeypatch.setattr(Ticket, "get_flowdock_status", lambda self: None, raising=False)
    Ticket.objects.create(subject="Polish")
    assert "status" not in locmem[-1]["thread"]


# --- delivery ---------------------------------------------------------------------


def test_unparsable_retry_after_is_a_plain_retry_not_a_crashed_drain(queued, local_api):
    local_api.answer(503, {"Retry-After": "soon"})
    result = drain()
    assert result.retrying == 1
    queued.refresh_from_db()
    assert (queued.state, queued.attempts, queued.claimed_until) == ("pending", 1, None)


def test_flow_token_is_not_kept_in_the_error_payload(queued, local_api):
    from django_flowdock.signals import message_failed

    errors = []
    handler = lambda error, **kw: errors.append(error)  # noqa: E731
    message_failed.connect(handler)
    try:
        local_api.answer(400)
        drain()
    finally:
        message_failed.disconnect(handler)
    assert errors and errors[0].payload is not None
    assert "local-token" not in repr(errors[0].payload)
    assert errors[0].payload["uuid"] == str(queued.uuid)


def test_infinite_retry_after_is_ignored_instead_of_crashing_the_drain(queued, local_api):
    local_api.answer(429, {"Retry-After": "1e400"})
    assert drain().retrying == 1
    queued.refresh_from_db()
    assert (queued.state, queued.attempts, queued.claimed_until) == ("pending", 1, None)


class CutOffServer:
    """Answers every request with a 202 whose body ends before its Content-Length."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{}")

    def stop(self) -> None:
        self.sock.close()


def test_response_cut_off_midway_is_retried_not_left_claimed(db, settings):
    server = CutOffServer()
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "API_URL": server.url,
        "DELIVERY": "worker",
        "TIMEOUT": (0.5, 0.5),
        "CLAIM_TIMEOUT": 5,
    }
    try:
        Source.objects.create(name="Local", flow_token="local-token")
        Ticket.objects.create(subject="Printer on fire")
        result = drain()
    finally:
        server.stop()
    message = Message.objects.get()
    assert result.retrying == 1
    assert (message.state, message.attempts, message.claimed_until) == ("pending", 1, None)
    assert "local-token" not in message.last_error


def test_update_whose_changes_are_too_long_to_quote_is_summarised(locmem, hand_source, monkeypatch):
    monkeypatch.setattr(Ticket, "get_flowdock_title", lambda self: self.subject * 30, raising=False)
    ticket = Ticket.objects.create(subject="a" * 200)
    ticket.subject = "b" * 200
    ticket.save()
    assert locmem[-1]["body"] == "<ul><li>Title changed</li></ul>"


def test_a_proxy_model_instance_is_the_same_thread_as_its_concrete_model():
    from django.test.utils import isolate_apps

    with isolate_apps("tests.testapp"):

        class OpenTicket(Ticket):
            class Meta:
                proxy = True
                app_label = "testapp"

    assert OpenTicket(pk=7).get_flowdock_thread_id() == Ticket(pk=7).get_flowdock_thread_id()


def test_a_single_number_timeout_setting_is_used_for_connect_and_read(queued, local_api, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "TIMEOUT": 0.5}
    assert drain().sent == 1


def test_an_error_page_echoing_the_request_does_not_store_the_flow_token(db, settings):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):
            sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = f"Bad request from token {sent['flow_token']}".encode()
            self.send_response(400)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "API_URL": f"http://127.0.0.1:{httpd.server_address[1]}",
        "DELIVERY": "worker",
        "TIMEOUT": (0.5, 0.5),
        "CLAIM_TIMEOUT": 5,
    }
    try:
        Source.objects.create(name="Local", flow_token="secret-flow-token")
        Ticket.objects.create(subject="Printer on fire")
        assert drain().failed == 1
    finally:
        httpd.shutdown()
        httpd.server_close()
    message = Message.objects.get()
    assert message.status_code == 400
    assert "secret-flow-token" not in message.last_error
    assert "[flow token]" in message.last_error
    assert "secret-flow-token" not in Source.objects.get().error_message


def test_retry_after_date_without_a_zone_is_read_as_utc(monkeypatch):
    import email.utils
    import time

    from django_flowdock.api.client import parse_retry_after

    # Far from UTC, so reading the date as local time would be hours off.
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    try:
        in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
        assert 50 < parse_retry_after(in_a_minute.replace("GMT", "-0000")) <= 60
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.django_db(transaction=True)
def test_lazily_translated_default_author_is_sent_as_text(settings, flowdock_outbox):
    from django.utils.translation import gettext_lazy

    from django_flowdock.models import Source
    from tests.testapp.models import Ticket

    settings.FLOWDOCK = {**settings.FLOWDOCK, "DEFAULT_AUTHOR": {"name": gettext_lazy("Robot")}}
    Source.objects.create(name="Helpdesk", flow_token="t")
    Ticket.objects.create(subject="Polish")
    assert flowdock_outbox[0]["author"] == {"name": "Robot"}
