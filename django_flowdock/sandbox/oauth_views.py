"""OAuth 2.0 authorization code flow, with the sandbox user always signed in."""

import base64
import binascii
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from .models import AccessToken, Application, AuthorizationCode, User, long_token
from .writes import write_transaction

SCOPES = {
    "flow": "Access your flows and post to them",
    "private": "Read and send private messages",
    "manage": "Manage your flows and organizations",
    "profile": "Read your profile",
    "offline_access": "Keep access while you are away (refresh tokens)",
    "integration": "Add integrations (sources) to your flows",
}
DEFAULT_SCOPE = "flow private"
#: The redirect URI of installed applications: the code is shown, not sent anywhere.
OUT_OF_BAND = "urn:ietf:wg:oauth:2.0:oob"


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))


def sandbox_user() -> User:
    """The person "signed in" to the sandbox's web pages, seeded at start."""
    return User.objects.earliest("id")


def token_parameters(request: Request) -> dict[str, Any]:
    """A token request's parameters; a JSON body that is not an object holds none."""
    return request.data if isinstance(request.data, dict) else {}


def error_page(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "flowdock_sandbox/oauth_error.html", {"message": message}, status=400)


@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    """The consent page; Allow redirects with a code, Deny with ``access_denied``.

    Problems with the client or the redirect URI are shown here, never redirected,
    so that a wrong redirect URI cannot receive anything.
    """
    params = request.GET if request.method == "GET" else request.POST
    application = Application.objects.filter(client_id=params.get("client_id", "")).first()
    if application is None:
        return error_page(request, "Unknown client_id: no application is registered with it.")
    redirect_uri = params.get("redirect_uri") or application.callback_uri
    if not redirect_uri:
        return error_page(request, "redirect_uri is required: the application has no callback URI.")
    out_of_band = redirect_uri == OUT_OF_BAND
    if application.callback_uri and redirect_uri != application.callback_uri and not out_of_band:
        return error_page(
            request,
            f"redirect_uri {redirect_uri!r} does not match the application's callback URI "
            f"{application.callback_uri!r}.",
        )
    state = params.get("state", "")
    answer = {"state": state} if state else {}
    if params.get("response_type") != "code":
        return HttpResponseRedirect(
            with_query(redirect_uri, error="unsupported_response_type", **answer)
        )
    scope = " ".join(params.get("scope", "").split()) or DEFAULT_SCOPE
    unknown = [name for name in scope.split() if name not in SCOPES]
    if unknown:
        return HttpResponseRedirect(with_query(redirect_uri, error="invalid_scope", **answer))
    user = sandbox_user()
    if request.method == "GET":
        context = {
            "application": application,
            "user": user,
            "scopes": [(name, SCOPES[name]) for name in scope.split()],
            "params": {
                "client_id": application.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": scope,
                "state": state,
            },
        }
        return render(request, "flowdock_sandbox/authorize.html", context)
    if params.get("decision") != "allow":
        return HttpResponseRedirect(with_query(redirect_uri, error="access_denied", **answer))
    with write_transaction():
        code = AuthorizationCode.objects.create(
            application=application, user=user, redirect_uri=redirect_uri, scope=scope
        )
    if out_of_band:
        return HttpResponseRedirect(reverse("flowdock_sandbox:authorized", args=[code.code]))
    return HttpResponseRedirect(with_query(redirect_uri, code=code.code, **answer))


def authorized(request: HttpRequest, code: str) -> HttpResponse:
    """Where an out-of-band authorization ends: the code is in the page's URL."""
    return render(request, "flowdock_sandbox/authorized.html", {"code": code})


class TokenView(APIView):
    """``POST /oauth/token``: form-encoded answers, JSON with ``Accept: application/json``."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> HttpResponse:
        application, used_basic = self.client(request)
        if application is None:
            response = self.answer(request, {"error": "invalid_client"}, status=401)
            if used_basic:
                response["WWW-Authenticate"] = 'Basic realm="Flowdock"'
            return response
        grant_type = token_parameters(request).get("grant_type")
        with write_transaction():
            if grant_type == "authorization_code":
                return self.exchange_code(request, application)
            if grant_type == "refresh_token":
                return self.refresh(request, application)
        return self.answer(request, {"error": "unsupported_grant_type"}, status=400)

    def client(self, request: Request) -> tuple[Application | None, bool]:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        used_basic = scheme.lower() == "basic"
        if used_basic:
            try:
                decoded = base64.b64decode(credentials.strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, True
            client_id, _, client_secret = (unquote(part) for part in decoded.partition(":"))
        else:
            data = token_parameters(request)
            client_id = data.get("client_id", "")
            client_secret = data.get("client_secret", "")
        application = Application.objects.filter(client_id=client_id).first()
        if application is None or not hmac.compare_digest(
            application.client_secret.encode(), str(client_secret).encode()
        ):
            return None, used_basic
        return application, used_basic

    def exchange_code(self, request: Request, application: Application) -> HttpResponse:
        data = token_parameters(request)
        code = AuthorizationCode.objects.filter(
            code=data.get("code", ""), application=application
        ).first()
        if code is None:
            return self.invalid_grant(request, "Unknown authorization code.")
        if code.used_at is not None:
            AccessToken.objects.filter(authorization_code=code).delete()
            return self.invalid_grant(request, "The authorization code was already used.")
        code.used_at = timezone.now()
        code.save(update_fields=["used_at"])
        if code.expired:
            return self.invalid_grant(request, "The authorization code has expired.")
        redirect_uri = data.get("redirect_uri")
        if not redirect_uri:
            return self.answer(
                request,
                {"error": "invalid_request", "error_description": "redirect_uri is required."},
                status=400,
            )
        if redirect_uri != code.redirect_uri:
            return self.invalid_grant(request, "redirect_uri differs from the authorization's.")
        return self.issue(request, application, code.user, code.scope, code=code)

    def refresh(self, request: Request, application: Application) -> HttpResponse:
        refresh_token = token_parameters(request).get("refresh_token", "")
        previous = (
            AccessToken.objects.filter(refresh_token=refresh_token, application=application).first()
            if refresh_token
            else None
        )
        if previous is None:
            return self.invalid_grant(request, "Unknown or revoked refresh token.")
        # Refresh tokens rotate: the one just used stops working.
        previous.delete()
        return self.issue(request, application, previous.user, previous.scope)

    def issue(
        self,
        request: Request,
        application: Application,
        user: User,
        scope: str,
        code: AuthorizationCode | None = None,
    ) -> HttpResponse:
        token = AccessToken.objects.create(
            application=application,
            user=user,
            scope=scope,
            authorization_code=code,
            refresh_token=long_token() if "offline_access" in scope.split() else None,
            expires_at=timezone.now() + AccessToken.LIFETIME,
        )
        data = {
            "access_token": token.access_token,
            "token_type": "bearer",
            "expires_in": int(AccessToken.LIFETIME.total_seconds()),
            # Comma-separated, as in the docs' example answer ("flow,private").
            "scope": ",".join(scope.replace(",", " ").split()),
        }
        if token.refresh_token:
            data["refresh_token"] = token.refresh_token
        return self.answer(request, data)

    def invalid_grant(self, request: Request, description: str) -> HttpResponse:
        return self.answer(
            request, {"error": "invalid_grant", "error_description": description}, status=400
        )

    def answer(self, request: Request, data: dict[str, Any], status: int = 200) -> HttpResponse:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if "application/json" in request.headers.get("Accept", ""):
            return HttpResponse(
                json.dumps(data), content_type="application/json", status=status, headers=headers
            )
        return HttpResponse(
            urlencode(data),
            content_type="application/x-www-form-urlencoded",
            status=status,
            headers=headers,
        )
