"""Identity claims: linking a Flowdock user to a Django user.

When an unknown Flowdock user presses an action, the answer carries a link with a
short-lived signed claim of that Flowdock user's id. Flowdock shows the link only to
that user; whoever follows it and signs in to the site links the Flowdock user to
their account, so no password or token of Flowdock's is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from django.urls import reverse

from django_flowdock.conf import flowdock_settings
from django_flowdock.context import absolute_url
from django_flowdock.exceptions import FlowdockConfigurationError

_SALT = "django_flowdock.identity-claim"


@dataclass(frozen=True)
class Claim:
    flowdock_user_id: str
    name: str


def make_claim(flowdock_user_id: str, name: str = "") -> str:
    return signing.TimestampSigner(salt=_SALT).sign_object(
        {"sub": str(flowdock_user_id), "name": name}
    )


def read_claim(value: str) -> Claim:
    """Raises ``signing.BadSignature`` (``SignatureExpired`` after
    ``FLOWDOCK["CLAIM_MAX_AGE"]`` seconds) unless ``value`` came from ``make_claim``."""
    data = signing.TimestampSigner(salt=_SALT).unsign_object(
        value, max_age=flowdock_settings.CLAIM_MAX_AGE
    )
    return Claim(flowdock_user_id=str(data["sub"]), name=str(data.get("name") or ""))


def claim_url(flowdock_user_id: str, name: str = "", request: Any = None) -> str:
    """Absolute URL of the page linking ``flowdock_user_id`` to the signed-in user:
    on ``FLOWDOCK["SITE_URL"]``, else on the host of ``request`` (Django's or DRF's)."""
    path = reverse("django_flowdock:identity-claim")
    path = f"{path}?{urlencode({'claim': make_claim(flowdock_user_id, name)})}"
    url = absolute_url(path, request)
    if url is None:
        raise FlowdockConfigurationError(
            'Set FLOWDOCK["SITE_URL"] (e.g. "https://app.example") so the sign-in link '
            "shown in Flowdock is absolute."
        )
    return url
