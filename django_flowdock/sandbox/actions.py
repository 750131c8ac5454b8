"""Pressing an UpdateAction: the request Flowdock sends to the integration."""

import hashlib
import json
import re
import time
from http import HTTPStatus
from typing import Any

import jwt
import requests

from .models import ActionInvocation, Thread, User
from .writes import write_transaction

TOKEN_LIFETIME = 30
TIMEOUT = 10
SIGN_IN_CHALLENGE = re.compile(r"Flowdock-Token\s+url=\"?([^\s\",]+)\"?", re.IGNORECASE)


def action_request(action: dict[str, Any], user: User, client_secret: str) -> dict[str, Any]:
    """Method, URL, body bytes and headers of the request for ``action``."""
    body = json.dumps(
        {**action, "agent": {"@type": "Person", "name": user.name, "image": user.avatar}}
    ).encode()
    token = jwt.encode(
        {
            "sub": str(user.pk),
            "exp": int(time.time()) + TOKEN_LIFETIME,
            "signature": hashlib.sha256(body).hexdigest(),
        },
        client_secret,
        algorithm="HS256",
    )
    return {
        "method": action["target"].get("httpMethod", "POST").upper(),
        "url": action["target"]["urlTemplate"],
        "data": body,
        "headers": {"Content-Type": "application/json", "FLOWDOCK-TOKEN": token},
    }


def perform_action(thread: Thread, index: int, user: User) -> ActionInvocation:
    """Send the thread's ``index``-th action and record how the integration answered."""
    action = thread.actions[index]
    invocation = ActionInvocation(thread=thread, action_name=action.get("name", ""))
    application = thread.source.application if thread.source else None
    if action.get("@type") != "UpdateAction":
        invocation.detail = "Only UpdateActions send requests."
    elif application is None:
        invocation.detail = "The thread's source has no application whose secret could sign."
    else:
        _send(invocation, action_request(action, user, application.client_secret))
    with write_transaction():
        invocation.save()
    return invocation


def describe(invocation: ActionInvocation, application_name: str) -> dict[str, Any]:
    """What the inbox tells the person who pressed the button: a sentence, not a dump."""
    name = invocation.action_name
    app = application_name or "the integration"
    result: dict[str, Any] = {
        "status_code": invocation.status_code,
        "sign_in_url": invocation.sign_in_url,
    }
    if invocation.sign_in_url:
        return {**result, "kind": "sign-in", "text": f"Sign in to {app} to use “{name}”."}
    said = _said(invocation.detail)
    if invocation.ok:
        text = said or "done."
        return {
            **result,
            "kind": "ok",
            "text": text if text.startswith(name) else f"{name}: {text}",
        }
    if invocation.status_code is None:
        reason = invocation.detail or f"{app} could not be reached."
        return {**result, "kind": "error", "text": f"{name} failed: {reason}"}
    try:
        phrase = HTTPStatus(invocation.status_code).phrase.lower()
    except ValueError:
        phrase = "an error"
    text = f"{name} failed: {app} answered {phrase} ({invocation.status_code})"
    return {**result, "kind": "error", "text": f"{text}: {said}" if said else f"{text}."}


def _said(detail: str) -> str:
    """The human part of an answer: a JSON ``detail``/``message``, or short plain text."""
    try:
        data = json.loads(detail)
    except ValueError:
        text = detail.strip()
        return text if text and len(text) <= 200 and "<" not in text else ""
    if isinstance(data, dict):
        for key in ("detail", "message", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                return " ".join(value)
    return ""


def _send(invocation: ActionInvocation, request: dict[str, Any]) -> None:
    try:
        response = requests.request(**request, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as error:
        invocation.detail = f"Request failed: {error}"
        return
    invocation.status_code = response.status_code
    challenge = SIGN_IN_CHALLENGE.search(response.headers.get("WWW-Authenticate", ""))
    if response.status_code == 401 and challenge:
        invocation.sign_in_url = challenge.group(1)
        invocation.detail = "Sign in to the integration first."
        return
    invocation.ok = response.ok
    invocation.detail = response.text[:2000]
