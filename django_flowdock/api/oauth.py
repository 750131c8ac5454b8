"""The OAuth 2.0 authorization code flow against Flowdock, with requests-oauthlib.

One connection attempt lives in the user's session between the redirect to
``/oauth/authorize`` and the shared callback: the ``state`` sent, the application,
and where to continue. Tokens are stored encrypted in :class:`OAuthToken`, refreshed
when they expire, and kept out of log lines (requests-oauthlib logs tokens and request
bodies at DEBUG; a filter drops those records).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from django.db import router, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from oauthlib.oauth2 import OAuth2Error
from requests_oauthlib import OAuth2Session

from django_flowdock.api.client import FlowdockClient
from django_flowdock.conf import flowdock_settings
from django_flowdock.context import absolute_url
from django_flowdock.exceptions import FlowdockError, FlowdockOAuthError
from django_flowdock.models import OAuthApplication, OAuthToken

logger = logging.getLogger("django_flowdock.api.oauth")

T = TypeVar("T")

SESSION_KEY = "django_flowdock_oauth"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Refresh this long before the token's stated expiry, so a request never races it.
#: A token that cannot be refreshed is used until the expiry itself.
EXPIRY_MARGIN = timedelta(seconds=60)


class _DropSecretsFilter(logging.Filter):
    """requests-oauthlib's DEBUG records carry tokens, codes and client secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("requests_oauthlib.oauth2_session").addFilter(_DropSecretsFilter())

_transport_lock = threading.Lock()


@contextmanager
def _transport(url: str) -> Iterator[None]:
    """oauthlib refuses plain HTTP; allow it only for a loopback API (the sandbox)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or parts.hostname not in LOOPBACK_HOSTS:
        yield
        return
    with _transport_lock:
        previous = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        try:
            yield
        finally:
            if previous is None:
                del os.environ["OAUTHLIB_INSECURE_TRANSPORT"]
            else:
                os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = previous


def site_url(request: HttpRequest | None, path: str) -> str:
    """``path`` on this site (``context.absolute_url``); outside a request it needs
    ``FLOWDOCK["SITE_URL"]``."""
    url = absolute_url(path, request)
    if url is None:
        raise FlowdockOAuthError(
            'Set FLOWDOCK["SITE_URL"] (e.g. "https://app.example") so that absolute URLs '
            "can be built outside a request."
        )
    return url


def callback_url(request: HttpRequest | None) -> str:
    """The Callback URI to register in Flowdock's developer application form."""
    return site_url(request, reverse("django_flowdock:oauth-callback"))


def scopes_for(application: OAuthApplication) -> list[str]:
    scopes = list(flowdock_settings.OAUTH_SCOPES)
    if application.offline_access and "offline_access" not in scopes:
        scopes.append("offline_access")
    return scopes


def _session(application: OAuthApplication, **kwargs: Any) -> OAuth2Session:
    return OAuth2Session(application.client_id, **kwargs)


def start(
    request: HttpRequest,
    application: OAuthApplication,
    *,
    purpose: str,
    next_url: str,
    data: dict[str, Any] | None = None,
) -> str:
    """Remember a new connection attempt in the session; return the authorize URL.

    ``purpose`` and ``data`` tell the callback how to continue; ``next_url`` is where
    it sends the user once the grant is stored.
    """
    redirect_uri = callback_url(request)
    oauth = _session(application, redirect_uri=redirect_uri, scope=scopes_for(application))
    with _transport(application.get_api_url()):
        url, state = oauth.authorization_url(f"{application.get_api_url()}/oauth/authorize")
    request.session[SESSION_KEY] = {
        "state": state,
        "application": application.pk,
        "redirect_uri": redirect_uri,
        "purpose": purpose,
        "next": next_url,
        "data": data or {},
    }
    return url


def pending(request: HttpRequest) -> dict[str, Any]:
    """Take the connection attempt out of the session (a callback is used only once)."""
    attempt = request.session.pop(SESSION_KEY, None)
    if not attempt:
        raise FlowdockOAuthError(
            "No connection to Flowdock was started in this browser session, or it was "
            "already completed. Start connecting the flow again."
        )
    return attempt


def exchange_code(request: HttpRequest, attempt: dict[str, Any]) -> OAuthToken:
    """Check the callback's ``state`` and answer, and trade the code for a token.

    The token is returned unsaved: the caller saves it once the rest of the step
    worked, so a failure leaves nothing behind.
    """
    if not constant_time_compare(request.GET.get("state", ""), attempt["state"]):
        raise FlowdockOAuthError(
            "The answer from Flowdock does not belong to the connection started here "
            "(state mismatch). Start connecting the flow again."
        )
    error = request.GET.get("error")
    if error == "access_denied":
        raise FlowdockOAuthError(
            "Access was denied in Flowdock, so no flow was connected. To connect it, "
            "start again and choose Allow."
        )
    if error:
        raise FlowdockOAuthError(f"Flowdock refused the authorization: {error}.")
    code = request.GET.get("code")
    if not code:
        raise FlowdockOAuthError("Flowdock's answer carries no authorization code.")
    application = OAuthApplication.objects.filter(pk=attempt["application"]).first()
    if application is None:
        raise FlowdockOAuthError("The OAuth application was deleted while connecting.")
    oauth = _session(application, redirect_uri=attempt["redirect_uri"], state=attempt["state"])
    token = _token_request(
        application,
        lambda: oauth.fetch_token(
            f"{application.get_api_url()}/oauth/token",
            code=code,
            client_secret=application.client_secret,
            include_client_id=True,
            timeout=FlowdockClient().timeout,
        ),
        invalid_grant="Flowdock did not accept the authorization code: it expired or was "
        "already used. Start connecting the flow again.",
    )
    return OAuthToken(
        application=application,
        user=request.user if request.user.is_authenticated else None,
        **_token_fields(token),
    )


def _token_request(
    application: OAuthApplication, call: Any, *, invalid_grant: str
) -> dict[str, Any]:
    """Run a token endpoint call; turn its failures into one clear ``FlowdockOAuthError``."""
    try:
        with _transport(application.get_api_url()):
            return dict(call())
    except OAuth2Error as exc:
        if exc.error == "invalid_grant":
            raise FlowdockOAuthError(invalid_grant, status_code=exc.status_code) from exc
        raise FlowdockOAuthError(
            f"Flowdock refused the token request ({exc.error}). Check the application's "
            "client ID and secret.",
            status_code=exc.status_code,
        ) from exc
    except Warning as changed:
        # oauthlib raises when Flowdock grants other scopes than asked; keep the grant.
        return dict(changed.token)  # type: ignore[attr-defined]
    except requests.RequestException as exc:
        raise FlowdockOAuthError(
            f"Could not reach Flowdock at {application.get_api_url()}: {type(exc).__name__}."
        ) from exc
    except ValueError as exc:  # oauthlib: e.g. an expires_in that is not a number
        raise FlowdockOAuthError(
            f"Flowdock's token answer could not be read ({exc}). Nothing was connected."
        ) from exc


def _token_fields(token: dict[str, Any]) -> dict[str, Any]:
    # Flowdock's docs show scopes as "flow,private"; oauthlib splits on spaces only.
    scope = token.get("scope") or ""
    words = scope if isinstance(scope, list) else [str(scope)]
    return {
        "access_token": token["access_token"],
        "refresh_token": token.get("refresh_token") or "",
        "scope": " ".join(part for word in words for part in re.split(r"[\s,]+", word) if part),
        "expires_at": _expires_at(token.get("expires_in")),
    }


def _expires_at(expires_in: Any) -> datetime | None:
    """When a token granted now with ``expires_in`` seconds expires. No value, or 0
    (which oauthlib drops, and which some servers send for tokens that do not expire),
    means no stated expiry; the API's 401 is then the only sign."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(seconds) and seconds > 0):
        return None
    return timezone.now() + timedelta(seconds=seconds)


def access_token(token: OAuthToken) -> str:
    """A usable access token for ``token``.

    Within ``EXPIRY_MARGIN`` of its expiry it is refreshed first (and saved, when the
    token is stored), so any lifetime works, even one shorter than the margin. Without
    a refresh token it is used until it expires, then ``FlowdockOAuthError`` asks to
    connect again.
    """
    now = timezone.now()
    if token.expires_at is None or token.expires_at - EXPIRY_MARGIN > now:
        return token.access_token
    if token.refresh_token or token.expires_at <= now:
        return refresh(token).access_token
    return token.access_token


def authorized_call(token: OAuthToken, send: Callable[[dict[str, str]], T]) -> T:
    """``send(headers)`` with the ``Authorization`` header of ``token``, refreshed
    before it expires (:func:`access_token`), then refreshed once more and sent again
    if Flowdock answers ``401`` anyway (a token revoked early, clocks apart). A second
    ``401`` propagates, as does the ``FlowdockOAuthError`` of a refused refresh."""
    try:
        return send({"Authorization": f"Bearer {access_token(token)}"})
    except FlowdockError as exc:
        if exc.status_code != 401 or not token.refresh_token:
            raise
    logger.info("Flowdock refused the OAuth token %s (401); refreshing it.", token.pk)
    return send({"Authorization": f"Bearer {refresh(token).access_token}"})


def refresh(token: OAuthToken) -> OAuthToken:
    """Trade the refresh token for a new access token and store both.

    A token not saved yet (one just granted by the OAuth callback) is refreshed in
    place; its caller saves it. Refreshes of one stored grant run one at a time: a
    refresh token may work only once (Flowdock can rotate it), so a caller holding a
    copy that another one already refreshed takes the stored result instead of
    spending the old refresh token.
    """
    if token.pk is None:
        return _refresh(token)
    with transaction.atomic(using=router.db_for_write(OAuthToken)):
        stored = OAuthToken.objects.select_for_update().filter(pk=token.pk).first()
        if stored is not None and stored.access_token != token.access_token:
            for name in ("access_token", "refresh_token", "scope", "expires_at"):
                setattr(token, name, getattr(stored, name))
            return token
        return _refresh(token)


def _refresh(token: OAuthToken) -> OAuthToken:
    if not token.refresh_token:
        raise FlowdockOAuthError(
            "The Flowdock authorization expired and holds no refresh token. Connect the "
            "flow again, or tick “keep refresh tokens” on the OAuth application."
        )
    application = token.application
    oauth = _session(application)
    data = _token_request(
        application,
        lambda: oauth.refresh_token(
            f"{application.get_api_url()}/oauth/token",
            refresh_token=token.refresh_token,
            client_id=application.client_id,
            client_secret=application.client_secret,
            timeout=FlowdockClient().timeout,
        ),
        invalid_grant="Flowdock no longer accepts this grant (revoked or expired). Connect "
        "the flow again.",
    )
    fields = _token_fields(data)
    if not fields["refresh_token"]:
        fields["refresh_token"] = token.refresh_token
    for name, value in fields.items():
        setattr(token, name, value)
    if token.pk is not None:
        token.save(update_fields=list(fields))
    logger.info("Refreshed the Flowdock OAuth token %s.", token.pk or "(not saved yet)")
    return token
