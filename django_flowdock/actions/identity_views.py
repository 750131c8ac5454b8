"""The page an unknown Flowdock user reaches from an action's sign-in link."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from django_flowdock.actions.identity import Claim, read_claim
from django_flowdock.conf import flowdock_settings
from django_flowdock.models import FlowdockUser, UsedToken

TEMPLATE = "django_flowdock/identity_claim.html"


@never_cache
@login_required
def claim(request: HttpRequest) -> HttpResponse:
    """GET shows who is about to be linked; POST (CSRF-protected) links the Flowdock
    user of the claim to the signed-in user. A claim links once."""
    value = request.GET.get("claim", "")
    try:
        claimed = read_claim(value)
    except signing.SignatureExpired:
        return _invalid(request, _("This sign-in link has expired."))
    except signing.BadSignature:
        return _invalid(request, _("This sign-in link is not valid."))
    context = {"claim": claimed, "state": "confirm"}
    if request.method == "POST":
        if _already_linked(claimed, request):
            context["state"] = "linked"
        elif not _first_use(value):
            return _invalid(request, _("This sign-in link has already been used."))
        else:
            FlowdockUser.objects.update_or_create(
                flowdock_user_id=claimed.flowdock_user_id,
                defaults={"user": _signed_in(request), "name": claimed.name},
            )
            context["state"] = "linked"
    return render(request, TEMPLATE, context)


def _signed_in(request: HttpRequest) -> Any:
    # The view is login_required: the user is never anonymous here.
    assert request.user.is_authenticated
    return request.user


def _already_linked(claimed: Claim, request: HttpRequest) -> bool:
    return FlowdockUser.objects.filter(
        flowdock_user_id=claimed.flowdock_user_id, user=request.user.pk
    ).exists()


def _first_use(value: str) -> bool:
    expires_at = timezone.now() + timedelta(seconds=flowdock_settings.CLAIM_MAX_AGE + 1)
    return UsedToken.objects.first_use("claim", value, expires_at)


def _invalid(request: HttpRequest, reason: str) -> HttpResponse:
    return render(request, TEMPLATE, {"state": "invalid", "reason": reason}, status=400)
