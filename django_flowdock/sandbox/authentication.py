"""The three ways Flowdock lets a client in: OAuth bearer, API token, flow token."""

import base64
import binascii

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from .exceptions import InsufficientScope, SourceGone
from .models import AccessToken, Source, User


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer TOKEN`` or ``?access_token=TOKEN``; ``request.auth`` is the
    :class:`AccessToken`."""

    def authenticate(self, request: Request) -> tuple[User, AccessToken] | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            credentials = credentials.strip()
        elif request.query_params.get("access_token"):
            credentials = request.query_params["access_token"]
        else:
            return None
        token = (
            AccessToken.objects.select_related("user", "application")
            .filter(access_token=credentials)
            .first()
        )
        if token is None or token.expires_at < timezone.now():
            raise exceptions.AuthenticationFailed("Invalid or expired access token.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="Flowdock"'


class APITokenBasicAuthentication(authentication.BaseAuthentication):
    """HTTP basic auth with the user's API token as the user name (any password)."""

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            api_token = base64.b64decode(credentials.strip()).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError) as error:
            raise exceptions.AuthenticationFailed("Malformed basic credentials.") from error
        user = User.objects.filter(api_token=api_token).first()
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid API token.")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="Flowdock"'


def source_for_token(flow_token: str) -> Source:
    """The live source of ``flow_token``: 401 when unknown, 410 when it was removed."""
    source = (
        Source.objects.select_related("flow__organization", "application", "creator")
        .filter(flow_token=flow_token)
        .first()
        if flow_token
        else None
    )
    if source is None:
        raise exceptions.NotAuthenticated("Unknown flow token.")
    if source.removed_at is not None:
        raise SourceGone()
    return source


class FlowTokenAuthentication(authentication.BaseAuthentication):
    """``flow_token`` in the query string or body; ``request.auth`` is the :class:`Source`.

    Only the token's own source is visible with it, as in Flowdock.
    """

    def authenticate(self, request: Request) -> tuple[User, Source] | None:
        data = request.data if isinstance(request.data, dict) else {}
        flow_token = request.query_params.get("flow_token") or data.get("flow_token")
        if not flow_token:
            return None
        source = source_for_token(flow_token)
        return source.creator, source

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="Flowdock"'


class IsSandboxUser(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.user, User)


def request_user(request: Request) -> User:
    """The sandbox user of a request that :class:`IsSandboxUser` let through."""
    user = request.user
    if not isinstance(user, User):
        raise exceptions.NotAuthenticated()
    return user


class HasScope(IsSandboxUser):
    """An OAuth token needs one of the view's ``scopes``; API tokens act with the user's
    full rights and flow tokens reach only the views that accept them."""

    def has_permission(self, request: Request, view: object) -> bool:
        if not super().has_permission(request, view):
            return False
        scopes = getattr(view, "scopes", ())
        if isinstance(request.auth, AccessToken) and scopes:
            require_scope(request, *scopes)
        return True


def require_scope(request: Request, *scopes: str) -> None:
    """OAuth tokens need one of ``scopes``; API tokens act with the user's full rights."""
    if isinstance(request.auth, AccessToken) and not request.auth.scopes & set(scopes):
        names = " or ".join(f"'{scope}'" for scope in scopes)
        raise InsufficientScope(f"This endpoint requires the OAuth scope {names}.")
