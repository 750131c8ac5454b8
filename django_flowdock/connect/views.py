"""Connecting flows: Flowdock's Setup URI, the OAuth callback, the Configuration URI.

A connection runs in three steps, whichever entry point started it (the Setup URI
here, or "Connect a flow" in the admin): :func:`oauth.start` sends the user to
Flowdock; :func:`oauth_callback` checks the answer, trades the code for a token and
looks up the flow(s); the entry point's own page then names the source and creates
it. Nothing is stored until a step succeeds, so every failure leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from django_flowdock.api import oauth
from django_flowdock.api.sources import create_source, find_flow, list_flows
from django_flowdock.connect.forms import ConfigureForm, ConnectForm
from django_flowdock.exceptions import FlowdockError, FlowdockOAuthError, FlowdockTransientError
from django_flowdock.models import OAuthApplication, OAuthToken, Source

#: The granted token and the flow(s) to choose from, between callback and creation.
CONNECTION_KEY = "django_flowdock_connection"
CONNECTED_KEY = "django_flowdock_connected"
ADD_SOURCE = "django_flowdock.add_source"


def error_page(request: HttpRequest, title: str, message: str, status: int = 400) -> HttpResponse:
    return render(
        request, "django_flowdock/error.html", {"title": title, "message": message}, status=status
    )


def flowdock_error_page(request: HttpRequest, exc: FlowdockError) -> HttpResponse:
    """One clear page per way talking to Flowdock can fail; the messages carry no secrets."""
    if isinstance(exc, FlowdockOAuthError):
        return error_page(request, _("The flow was not connected"), str(exc))
    if isinstance(exc, FlowdockTransientError):
        return error_page(
            request,
            _("Flowdock could not be reached"),
            _("Nothing was connected. Try again in a moment. (%(error)s)") % {"error": exc},
            status=502,
        )
    return error_page(
        request,
        _("Flowdock refused the request"),
        _("Nothing was connected: %(error)s") % {"error": exc},
        status=502,
    )


def require_add_source(request: HttpRequest) -> None:
    # A source streams the project's items into a flow: not for every signed-in user.
    if not request.user.has_perm(ADD_SOURCE):
        raise PermissionDenied(
            _("Connecting a flow needs the “Can add source” permission; ask an administrator.")
        )


@login_required
@require_GET
def setup(request: HttpRequest, application_id: int | None = None) -> HttpResponse:
    """Flowdock's Setup URI: ``?flow=<flow id>&flow_url=<API URL of the flow>``."""
    require_add_source(request)
    flow_id = request.GET.get("flow", "")
    if not flow_id:
        return error_page(
            request,
            _("No flow given"),
            _("Open this page from Flowdock: its Setup URI link adds the flow to connect."),
        )
    applications = OAuthApplication.objects.all()
    if application_id is not None:
        applications = applications.filter(pk=application_id)
    found = list(applications[:2])
    if len(found) != 1:
        return error_page(
            request,
            _("Unknown application"),
            _("Use the Setup URI shown on the OAuth application's page in the admin."),
            status=404,
        )
    url = oauth.start(
        request,
        found[0],
        purpose="setup",
        next_url=reverse("django_flowdock:setup-confirm"),
        data={"flow": flow_id},
    )
    return HttpResponseRedirect(url)


@login_required
@require_GET
def oauth_callback(request: HttpRequest) -> HttpResponse:
    """Where Flowdock sends the user back; continues whichever step started the attempt."""
    try:
        attempt = oauth.pending(request)
        token = oauth.exchange_code(request, attempt)
        flow_id = attempt["data"].get("flow")
        if flow_id:
            try:
                flows = [find_flow(token, flow_id)]
            except FlowdockError as exc:
                if exc.status_code != 404:
                    raise
                return error_page(
                    request,
                    _("Flow not found"),
                    _("Flowdock knows no flow %(flow)s that you can access. Nothing was connected.")
                    % {"flow": flow_id},
                    status=404,
                )
        else:
            flows = list_flows(token)
        summaries = [_flow_summary(flow) for flow in flows]
    except FlowdockError as exc:
        return flowdock_error_page(request, exc)
    token.save()
    request.session[CONNECTION_KEY] = {
        "purpose": attempt["purpose"],
        "token": token.pk,
        "flows": summaries,
    }
    return HttpResponseRedirect(attempt["next"])


def _flow_summary(flow: dict[str, Any]) -> dict[str, Any]:
    """What the next step needs of a flow; kept in the session."""
    try:
        organization = flow["organization"]
        return {
            "id": str(flow["id"]),
            "name": flow["name"],
            "parameterized_name": flow["parameterized_name"],
            "organization": {
                "name": organization["name"],
                "parameterized_name": organization["parameterized_name"],
            },
            "web_url": flow.get("web_url", ""),
        }
    except (KeyError, TypeError) as exc:
        raise FlowdockError(f"Flowdock answered with a flow this app cannot read: {exc!r}") from exc


def connection(request: HttpRequest, purpose: str) -> tuple[OAuthToken, list[dict[str, Any]]]:
    """The granted token and flows of the attempt that ``purpose`` started."""
    data = request.session.get(CONNECTION_KEY) or {}
    token = None
    if data.get("purpose") == purpose:
        token = OAuthToken.objects.filter(pk=data["token"], user=request.user.pk).first()
    if token is None:
        raise FlowdockOAuthError(
            _("No flow is waiting to be connected in this browser session. Start again.")
        )
    return token, data["flows"]


def connect(request: HttpRequest, form: ConnectForm, token: OAuthToken, flow: dict) -> Source:
    """Create the source the form describes and end the attempt.

    One attempt creates one source: the grant's row stays locked while Flowdock creates
    it, so the second request of a double submit waits, then finds the source made.
    """
    with transaction.atomic(using=router.db_for_write(Source)):
        OAuthToken.objects.select_for_update().filter(pk=token.pk).first()
        if Source.objects.filter(token=token).exists():
            raise FlowdockOAuthError(
                _("This connection already created its source. To add another, start again.")
            )
        source = create_source(
            request,
            token,
            flow,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data.get("scope"),
        )
    request.session.pop(CONNECTION_KEY, None)
    return source


@login_required
@require_http_methods(["GET", "POST"])
def setup_confirm(request: HttpRequest) -> HttpResponse:
    """Name the source (and pick its scope) for the flow the Setup URI named."""
    require_add_source(request)
    try:
        token, flows = connection(request, "setup")
    except FlowdockOAuthError as exc:
        return flowdock_error_page(request, exc)
    flow = flows[0]
    form = ConnectForm(request.POST or None, initial={"name": flow["name"]})
    if request.method == "POST" and form.is_valid():
        try:
            source = connect(request, form, token, flow)
        except FlowdockError as exc:
            return flowdock_error_page(request, exc)
        request.session[CONNECTED_KEY] = source.pk
        return HttpResponseRedirect(reverse("django_flowdock:setup-done"))
    return render(request, "django_flowdock/setup_confirm.html", {"form": form, "flow": flow})


@login_required
@require_GET
def setup_done(request: HttpRequest) -> HttpResponse:
    source = Source.objects.filter(
        pk=request.session.get(CONNECTED_KEY) or 0, token__user=request.user.pk
    ).first()
    if source is None:
        return error_page(request, _("Nothing to show"), _("No flow was connected just now."))
    return render(request, "django_flowdock/setup_done.html", {"source": source})


@login_required
@require_http_methods(["GET", "POST"])
def configure(request: HttpRequest) -> HttpResponse:
    """Flowdock's Configuration URI: ``?integration_id=<source id>&flow=<flow id>``."""
    integration_id, flow_id = request.GET.get("integration_id", ""), request.GET.get("flow", "")
    # Sources connected by hand have blank ids, so empty parameters must not match them;
    # NUL is refused by PostgreSQL (a 500) and is in no id.
    valid = integration_id and flow_id and "\x00" not in integration_id + flow_id
    source = (
        Source.objects.filter(flowdock_id=integration_id, flow_id=flow_id)
        .select_related("token")
        .first()
        if valid
        else None
    )
    if source is None:
        return error_page(
            request,
            _("Source not found"),
            _("No source connected here matches this Flowdock link."),
            status=404,
        )
    owner = source.token is not None and source.token.user_id == request.user.pk
    if not (owner or request.user.has_perm("django_flowdock.change_source")):
        raise PermissionDenied(_("Only whoever connected this source, or staff, may configure it."))
    form = ConfigureForm(request.POST or None, source=source)
    saved = False
    if request.method == "POST" and form.is_valid():
        form.save()
        saved = True
    return render(
        request,
        "django_flowdock/configure.html",
        {"form": form, "source": source, "saved": saved},
    )
