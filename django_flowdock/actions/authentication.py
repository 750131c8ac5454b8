"""DRF authentication for requests Flowdock sends when a chat user presses an UpdateAction.

The ``FLOWDOCK-TOKEN`` header is a JWT (HS256) signed with the client secret of the
developer application; its claims are ``sub`` (the Flowdock user id), ``exp`` (about
30 seconds ahead) and ``signature`` (hex SHA-256 of the raw body). The token is
accepted only from the application whose source received the thread, only for the
target (URL and method) the body names, and only once. Token failures are an
``AuthenticationFailed`` (401 with ``WWW-Authenticate: Flowdock-Token``), a body made
for another target a ``PermissionDenied`` (403); never a 500.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import jwt
from django.db.models import QuerySet
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.request import Request

from django_flowdock.actions.identity import claim_url
from django_flowdock.conf import flowdock_settings
from django_flowdock.context import absolute_url
from django_flowdock.models import FlowdockUser, OAuthApplication, UsedToken

#: Flowdock's tokens live 30 seconds; a later ``exp`` (beyond the leeway,
#: ``FLOWDOCK["ACTION_TOKEN_LEEWAY"]``) is refused so that the replay store only ever
#: has to remember tokens for a short while.
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


def thread_applications(thread_id: str) -> QuerySet[OAuthApplication]:
    """The applications whose sources received the thread ``thread_id`` (an
    ``external_thread_id``), as the outbox recorded it."""
    return (
        OAuthApplication.objects.filter(sources__messages__thread_key=thread_id)
        .distinct()
        .only("pk", "name", "client_secret")
    )


def read_token(token: str, body: bytes) -> dict[str, Any]:
    """The claims of ``token``, not yet verified, once it is a JWT (HS256) with every
    claim, current (within the leeway) and made for ``body``: steps 1 to 3 of the
    checks, which need no secret and no query, so a malformed, stale or tampered
    request is refused for nothing."""
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
    if not isinstance(unverified["sub"], str | int) or not str(unverified["sub"]):
        raise _refuse("sub is not a user id")
    exp, now = unverified["exp"], time.time()
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise _refuse("exp is not a timestamp")
    # Our clock may run ahead of Flowdock's (a token looks expired) or behind it (a
    # token looks long-lived): both bounds allow the same leeway.
    leeway = flowdock_settings.ACTION_TOKEN_LEEWAY
    if exp <= now - leeway:
        raise _refuse("expired")
    # Compared, not subtracted: an int too large for a float must not raise (500).
    if not exp <= now + MAX_TOKEN_LIFETIME + leeway:
        raise _refuse("expires too far in the future")
    if not hmac.compare_digest(str(unverified["signature"]), body_signature(body)):
        raise _refuse("the body does not match its signature")
    return unverified


def verify_token(
    token: str,
    body: bytes,
    applications: Callable[[], Iterable[OAuthApplication]],
    *,
    url: str,
    method: str,
) -> tuple[dict[str, Any], OAuthApplication]:
    """The verified claims of ``token`` and which of ``applications()`` signed it.

    ``applications`` returns those allowed to act on the target (see
    :func:`thread_applications`); it is called only once :func:`read_token` passed, so
    a malformed, stale or tampered request costs no query. ``url`` and ``method`` are
    where the request came, which the body's ``target`` must name. The token is
    recorded as used last, so only a request that passed every check spends it.
    """
    exp = read_token(token, body)["exp"]
    leeway = flowdock_settings.ACTION_TOKEN_LEEWAY
    candidates = list(applications())
    if not candidates:
        raise _refuse(
            "no source of an OAuth application received this thread; set the application "
            "of the thread's sources (a source connected by hand has none)"
        )
    for application in candidates:
        try:
            claims = jwt.decode(
                token,
                application.client_secret,
                algorithms=["HS256"],
                leeway=leeway,
                # Flowdock user ids may be numbers; sub is checked below instead.
                options={"require": list(REQUIRED_CLAIMS), "verify_sub": False},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise _refuse(str(exc).rstrip(".").lower()) from None
        break
    else:
        raise _refuse("not signed by the application whose source received this thread")

    check_target(body, url=url, method=method)
    # Keyed on the signed part only: the signature segment can be re-encoded (padding)
    # and still verify, so a copy of the whole token is not a reliable key.
    signed_part = token.rpartition(".")[0]
    # Remembered for as long as the token is accepted, so a replay within the leeway
    # is refused too.
    expires_at = datetime.datetime.fromtimestamp(exp + leeway, tz=datetime.UTC)
    if not UsedToken.objects.first_use("action", signed_part, expires_at):
        raise _refuse("already used")
    return claims, application


def check_target(body: bytes, *, url: str, method: str) -> None:
    """Raise ``PermissionDenied`` unless the body's ``target`` names ``url`` and
    ``method``: a signed body made for one button must not work at another's URL."""
    try:
        target = _json(body).get("target") or {}
        named_url, named_method = target.get("urlTemplate"), target.get("httpMethod")
    except (ValueError, AttributeError):
        named_url = named_method = None
    if not isinstance(named_url, str) or _normalized(named_url) != _normalized(url):
        raise PermissionDenied(
            "The action body's target.urlTemplate is not the URL this request was sent to."
        )
    if not isinstance(named_method, str) or named_method.upper() != method.upper():
        raise PermissionDenied(
            "The action body's target.httpMethod is not the method of this request."
        )


def _json(body: bytes) -> Any:
    # Decoded as UTF-8 first: json.loads() would guess UTF-16 or UTF-32 from raw bytes.
    return json.loads(body.decode("utf-8"))


def _normalized(url: str) -> tuple[str, str, str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower(), unquote(parts.path), parts.query


def request_url(request: Request) -> str:
    """The URL the request came to, as the site's action URLs are built: on
    ``FLOWDOCK["SITE_URL"]`` (a proxy may hide the scheme and host), else the request's."""
    path = request.get_full_path()
    return absolute_url(path, request) or path


def agent_from(body: bytes) -> dict[str, Any] | None:
    """The ``agent`` (the Flowdock ``Person`` who pressed the button) of a request body,
    read leniently: the body is already proven to be what Flowdock signed."""
    try:
        agent = _json(body).get("agent")
    except (ValueError, AttributeError):
        return None
    return agent if isinstance(agent, dict) else None


class FlowdockTokenAuthentication(BaseAuthentication):
    """Authenticates as the Django user linked to the token's Flowdock user.

    The view names the applications allowed to sign for the request with a
    ``flowdock_applications(request)`` method (``ActionView``: those whose sources
    received the object's thread), called only once the token passed the checks that
    need no query.

    A valid token from a Flowdock user nobody has linked yet fails with
    ``WWW-Authenticate: Flowdock-Token url=<claim URL>``; Flowdock shows that link, and
    signing in there links the two accounts (see ``identity_views``).
    """

    def authenticate(self, request: Request) -> tuple[Any, FlowdockIdentity] | None:
        token = request.META.get("HTTP_FLOWDOCK_TOKEN")
        if not token:
            return None
        body = request.body
        view = request.parser_context["view"]
        claims, application = verify_token(
            token,
            body,
            partial(view.flowdock_applications, request),
            url=request_url(request),
            method=request.method or "",
        )
        flowdock_user_id = str(claims["sub"])
        link = (
            FlowdockUser.objects.select_related("user")
            .filter(flowdock_user_id=flowdock_user_id, user__is_active=True)
            .first()
        )
        if link is None:
            name = str((agent_from(body) or {}).get("name") or "")[:200]
            # Read back by authenticate_header(), which DRF calls with this request.
            request._flowdock_claim_url = claim_url(flowdock_user_id, name, request)  # type: ignore[attr-defined]
            raise UnknownFlowdockUser()
        return link.user, FlowdockIdentity(flowdock_user_id, application, claims)

    def authenticate_header(self, request: Request) -> str:
        url = getattr(request, "_flowdock_claim_url", None)
        return f"Flowdock-Token url={url}" if url else "Flowdock-Token"
