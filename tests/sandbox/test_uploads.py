"""Files: images described with their size and a thumbnail, as in Flowdock's file
sample; requests larger than the sandbox's limit refused before they are read."""

import base64
import http.client
import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from django_flowdock.sandbox.images import image_size, thumbnail_size
from django_flowdock.sandbox.limits import REQUEST_LIMIT
from tests.sandbox.images import gif_header, jpeg_header, png

MB = 1024 * 1024


def wait_post(sandbox, payload):
    return requests.post(
        f"{sandbox.url}/messages",
        json=payload,
        headers={"X-flowdock-wait-for-message": "1"},
        timeout=30,
    )


def attachment(file_name, content_type, data, content_id):
    return {
        "content_id": content_id,
        "file_name": file_name,
        "content_type": content_type,
        "data": base64.b64encode(data).decode(),
    }


# -- image sizes and thumbnails -------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png(24, 16), (24, 16)),
        (gif_header(300, 200), (300, 200)),
        (jpeg_header(1920, 1087), (1920, 1087)),
        (b"\x89PNG fake", None),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),  # cut before its frame header
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (gif_header(0, 10), None),
    ],
    ids=["png", "gif", "jpeg", "broken-png", "cut-jpeg", "svg", "empty-gif"],
)
def test_image_size_is_read_from_the_header(data, size):
    assert image_size(data) == size


def test_thumbnails_fit_100_pixels_as_in_flowdocks_sample_and_are_never_enlarged():
    assert thumbnail_size(1920, 1087) == (100, 57)
    assert thumbnail_size(1087, 1920) == (57, 100)
    assert thumbnail_size(24, 16) == (24, 16)
    assert thumbnail_size(5000, 10) == (100, 1)


def test_an_uploaded_image_carries_its_size_and_a_thumbnail(sandbox, api_auth):
    image = png(1920, 1087)

    response = requests.post(
        f"{sandbox.url}/flows/acme/main/messages",
        auth=api_auth,
        data={"event": "file"},
        files={"content": ("screenshot.png", image, "image/png")},
        timeout=30,
    )

    assert response.status_code == 201, response.text
    message = response.json()
    content = message["content"]
    assert message["attachments"] == [content]
    assert content["image"] == {"width": 1920, "height": 1087}
    folder, _, name = content["path"].rpartition("/")
    assert content["thumbnail"] == {
        "path": f"{folder}/thumb/{name}",
        "width": 100,
        "height": 57,
    }
    thumbnail = requests.get(
        f"{sandbox.url}{content['thumbnail']['path']}",
        auth=api_auth,
        allow_redirects=False,
        timeout=10,
    )
    assert thumbnail.status_code == 302
    stored = requests.get(f"{sandbox.url}{thumbnail.headers['Location']}", timeout=10)
    assert stored.content == image


def test_inbox_attachments_get_sizes_only_when_they_are_readable_images(sandbox, message):
    message["attachments"] = [
        attachment("photo.jpg", "image/jpeg", jpeg_header(640, 480), "photo"),
        attachment("anim.gif", "image/gif", gif_header(32, 48), "anim"),
        attachment("broken.png", "image/png", b"\x89PNG fake", "broken"),
        attachment("notes.txt", "text/plain", png(), "notes"),
    ]

    response = wait_post(sandbox, message)

    assert response.status_code == 200, response.text
    described = {
        a["file_name"]: (a.get("image"), a.get("thumbnail")) for a in response.json()["attachments"]
    }
    photo, anim = described.pop("photo.jpg"), described.pop("anim.gif")
    assert photo[0] == {"width": 640, "height": 480}
    assert (photo[1]["width"], photo[1]["height"]) == (100, 75)
    assert anim[0] == {"width": 32, "height": 48}
    assert (anim[1]["width"], anim[1]["height"]) == (32, 48)
    # Not an image it can read, or not declared an image: described as a file only.
    assert described == {"broken.png": (None, None), "notes.txt": (None, None)}


# -- the request size limit -----------------------------------------------------------


class LazyMultipart(io.RawIOBase):
    """A multipart/form-data body whose one file is ``size`` zero bytes, made as it is
    read: the test never holds the body it sends."""

    BOUNDARY = "sandbox-upload-limit"

    def __init__(self, fields, file_field, size):
        head = "".join(
            f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        )
        head += (
            f"--{self.BOUNDARY}\r\nContent-Disposition: form-data; "
            f'name="{file_field}"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        self.head = head.encode()
        self.tail = f"\r\n--{self.BOUNDARY}--\r\n".encode()
        self.length = len(self.head) + size + len(self.tail)
        self.content_type = f"multipart/form-data; boundary={self.BOUNDARY}"
        self.position = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        start, end = self.position, min(self.length, self.position + len(buffer))
        chunk = bytearray(end - start)
        if start < len(self.head):
            piece = self.head[start:end]
            chunk[: len(piece)] = piece
        tail_start = self.length - len(self.tail)
        if end > tail_start:
            offset = max(start, tail_start)
            piece = self.tail[offset - tail_start : end - tail_start]
            chunk[offset - start : offset - start + len(piece)] = piece
        buffer[: len(chunk)] = chunk
        self.position = end
        return len(chunk)


def peak_memory(pid):
    """The process's peak resident memory in bytes (Linux)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        pytest.skip("reading a process's peak memory needs Linux's /proc")
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def activity_fields(sandbox):
    return {
        "flow_token": sandbox.flow_token,
        "event": "activity",
        "author[name]": "Uploader",
        "title": "uploaded a file",
        "external_thread_id": "upload-1",
        "thread[title]": "Big upload",
    }


def test_an_upload_over_the_limit_is_refused_with_413_without_being_read_into_memory(
    sandbox, message
):
    body = LazyMultipart(activity_fields(sandbox), "attachments[big]", 128 * MB)
    url = urlsplit(sandbox.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60, blocksize=MB)
    before = peak_memory(sandbox.process.pid)

    connection.request(
        "POST",
        "/messages",
        body=body,
        headers={"Content-Type": body.content_type, "Content-Length": str(body.length)},
    )
    response = connection.getresponse()
    answer = json.loads(response.read())

    assert response.status == 413
    assert answer == {
        "message": f"Request too large: {body.length} bytes. The sandbox accepts at most "
        f"{REQUEST_LIMIT} bytes (10 MB) per request, attachments included."
    }
    assert peak_memory(sandbox.process.pid) - before < 40 * MB
    assert sandbox.messages() == []
    # The refused body was read to its end, so the connection carries the next request.
    assert response.getheader("Connection") != "close"
    connection.request(
        "POST", "/messages", body=json.dumps(message), headers={"Content-Type": "application/json"}
    )
    assert connection.getresponse().status == 202
    connection.close()


def test_json_over_the_limit_is_refused_with_413(sandbox, message):
    message["attachments"] = [
        attachment("big.bin", "application/octet-stream", bytes(REQUEST_LIMIT), "big")
    ]

    response = wait_post(sandbox, message)

    assert response.status_code == 413
    assert response.json()["message"].startswith("Request too large:")
    assert sandbox.messages() == []


@pytest.mark.parametrize("how", ["multipart", "json"])
def test_an_attachment_within_the_limit_is_stored_whole(sandbox, message, how):
    data = bytes(range(256)) * (6 * MB // 256)
    if how == "multipart":
        response = requests.post(
            f"{sandbox.url}/messages",
            data=activity_fields(sandbox),
            files={"attachments[big]": ("big.bin", data, "application/octet-stream")},
            headers={"X-flowdock-wait-for-message": "1"},
            timeout=30,
        )
    else:
        message["attachments"] = [attachment("big.bin", "application/octet-stream", data, "big")]
        response = wait_post(sandbox, message)

    assert response.status_code == 200, response.text
    [stored] = response.json()["attachments"]
    assert stored["file_size"] == len(data)
    path = requests.get(
        f"{sandbox.url}{stored['path']}",
        auth=(sandbox.credentials["user"]["api_token"], ""),
        allow_redirects=False,
        timeout=10,
    ).headers["Location"]
    assert requests.get(f"{sandbox.url}{path}", timeout=30).content == data
