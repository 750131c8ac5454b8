"""Pressing an UpdateAction: the request Flowdock sends to the integration."""

import hashlib
import json
import re
import time
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
    application = thread.source.application
    if action.get("@type") != "UpdateAction":
        invocation.detail = "Only UpdateActions send requests."
    elif application is None:
        invocation.detail = "The thread's source has no application whose secret could sign."
    else:
        _send(invocation, action_request(action, user, application.client_secret))
    with write_transaction():
        invocation.save()
    return invocation


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
    invocation.detail = response.text[:300]
