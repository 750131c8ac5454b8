"""DRF authentication for requests Flowdock sends when a chat user presses an UpdateAction.

The ``FLOWDOCK-TOKEN`` header is a JWT (HS256) signed with the client secret of the
developer application; its claims are ``sub`` (the Flowdock user id), ``exp`` (about
30 seconds ahead) and ``signature`` (hex SHA-256 of the raw body). Every failure is an
``AuthenticationFailed`` (401 with ``WWW-Authenticate: Flowdock-Token``), never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from typing import Any, NamedTuple

import jwt
from django.core.cache import caches
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from .conf import flowdock_settings
from .identity import claim_url
from .models import FlowdockUser, OAuthApplication

#: Flowdock's tokens live 30 seconds; a later ``exp`` is refused so that the replay
#: store only ever has to remember tokens for a short while.
MAX_TOKEN_LIFETIME = 300
REQUIRED_CLAIMS = ("sub", "exp", "signature")


class FlowdockIdentity(NamedTuple):
    """``request.auth`` of a verified action request."""

    flowdock_user_id: str
    application: OAuthApplication
    claims: dict[str, Any]


class UnknownFlowdockUser(AuthenticationFailed):
    default_detail = "Sign in to link your Flowdock account, then run the action again."
    default_code = "flowdock_user_unknown"


def _refuse(reason: str) -> AuthenticationFailed:
    return AuthenticationFailed(f"Invalid FLOWDOCK-TOKEN: {reason}.")


def body_signature(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def verify_token(token: str, body: bytes) -> tuple[dict[str, Any], OAuthApplication]:
    """The verified claims and the application whose secret signed ``token``.

    Checks that need no secret (form, algorithm, expiry, body hash) run first, so a
    stale or tampered request costs no query. The token does not say which application
    signed it, so each application's secret is tried: several applications, or an old
    and a new one while a secret is rotated, are all accepted.
    """
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _refuse("not a JWT") from None
    if header.get("alg") != "HS256":
        raise _refuse("not signed with HS256")
    missing = [claim for claim in REQUIRED_CLAIMS if claim not in unverified]
    if missing:
        raise _refuse(f"missing claim(s) {', '.join(missing)}")
    exp, now = unverified["exp"], time.time()
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise _refuse("exp is not a timestamp")
    if exp <= now:
        raise _refuse("expired")
    # Compared, not subtracted: an int too large for a float must not raise (500).
    if not exp <= now + MAX_TOKEN_LIFETIME:
        raise _refuse("expires too far in the future")
    if not hmac.compare_digest(str(unverified["signature"]), body_signature(body)):
        raise _refuse("the body does not match its signature")

    for application in OAuthApplication.objects.only("pk", "name", "client_secret"):
        try:
            claims = jwt.decode(
                token,
                application.client_secret,
                algorithms=["HS256"],
                # Flowdock user ids may be numbers; sub is checked below instead.
                options={"require": list(REQUIRED_CLAIMS), "verify_sub": False},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise _refuse(str(exc).rstrip(".").lower()) from None
        break
    else:
        raise _refuse("not signed by a known application")

    if not isinstance(claims["sub"], str | int) or not str(claims["sub"]):
        raise _refuse("sub is not a user id")
    _forbid_replay(token, exp)
    return claims, application


def _forbid_replay(token: str, exp: float) -> None:
    # Keyed on the signed part only: the signature segment can be re-encoded (padding)
    # and still verify, so a copy of the whole token is not a reliable key.
    signed_part = token.rpartition(".")[0]
    key = "django_flowdock:action-token:" + hashlib.sha256(signed_part.encode()).hexdigest()
    timeout = max(1, math.ceil(exp - time.time()))
    if not caches[flowdock_settings.ACTION_CACHE].add(key, 1, timeout=timeout):
        raise _refuse("already used")


def agent_from(body: bytes) -> dict[str, Any] | None:
    """The ``agent`` (the Flowdock ``Person`` who pressed the button) of a request body,
    read leniently: the body is already proven to be what Flowdock signed."""
    try:
        agent = json.loads(body).get("agent")
    except (ValueError, AttributeError):
        return None
    return agent if isinstance(agent, dict) else None


class FlowdockTokenAuthentication(BaseAuthentication):
    """Authenticates as the Django user linked to the token's Flowdock user.

    A valid token from a Flowdock user nobody has linked yet fails with
    ``WWW-Authenticate: Flowdock-Token url=<claim URL>``; Flowdock shows that link, and
    signing in there links the two accounts (see ``identity_views``).
    """

    def authenticate(self, request: Request) -> tuple[Any, FlowdockIdentity] | None:
        token = request.META.get("HTTP_FLOWDOCK_TOKEN")
        if not token:
            return None
        body = request._request.body
        claims, application = verify_token(token, body)
        flowdock_user_id = str(claims["sub"])
        link = (
            FlowdockUser.objects.select_related("user")
            .filter(flowdock_user_id=flowdock_user_id, user__is_active=True)
            .first()
        )
        if link is None:
            name = str((agent_from(body) or {}).get("name") or "")[:200]
            request._flowdock_claim_url = claim_url(flowdock_user_id, name, request._request)
            raise UnknownFlowdockUser()
        return link.user, FlowdockIdentity(flowdock_user_id, application, claims)

    def authenticate_header(self, request: Request) -> str:
        url = getattr(request, "_flowdock_claim_url", None)
        return f"Flowdock-Token url={url}" if url else "Flowdock-Token"
