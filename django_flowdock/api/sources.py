"""Flowdock's Sources API: find flows, create, update and remove sources.

Calls made for a user go with their OAuth access token (``Authorization: Bearer``),
refreshed first when it expired; calls about one source go with its flow token in
the body. Tokens never travel in URLs.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from django_flowdock.api import oauth
from django_flowdock.api.client import FlowdockClient
from django_flowdock.exceptions import FlowdockError, FlowdockSourceGoneError
from django_flowdock.models import Message, OAuthToken, Source

logger = logging.getLogger("django_flowdock.api.sources")

#: (connect, read) seconds for the error report made from the delivery path.
REPORT_TIMEOUT = (1.0, 2.0)


def user_request(token: OAuthToken, method: str, path: str, **kwargs: Any) -> Any:
    """Call the API as the user who granted ``token``; return the decoded JSON or None."""
    client = FlowdockClient(token.application.get_api_url(), timeout=kwargs.pop("timeout", None))
    headers = {"Authorization": f"Bearer {oauth.access_token(token)}"}
    response = client.request(method, path, headers=headers, **kwargs)
    return response.json() if response.content else None


def find_flow(token: OAuthToken, flow_id: str) -> dict[str, Any]:
    """``GET /flows/find?id=``: the flow Flowdock's Setup URI named."""
    return user_request(token, "GET", "/flows/find", params={"id": flow_id})


def list_flows(token: OAuthToken) -> list[dict[str, Any]]:
    """``GET /flows``: the flows of the user who granted ``token``."""
    return user_request(token, "GET", "/flows")


def flow_path(flow: dict[str, Any]) -> str:
    """``"organization/flow"``, as in ``/flows/:org/:flow``."""
    return f"{flow['organization']['parameterized_name']}/{flow['parameterized_name']}"


def configuration_url(request: HttpRequest | None, source: Source) -> str:
    """Our Configuration URI for ``source``, with the parameters Flowdock would add."""
    query = urlencode({"integration_id": source.flowdock_id, "flow": source.flow_id})
    return oauth.site_url(request, f"{reverse('django_flowdock:configure')}?{query}")


def create_source(
    request: HttpRequest | None,
    token: OAuthToken,
    flow: dict[str, Any],
    *,
    name: str,
    scope: Any = None,
) -> Source:
    """Create a source in ``flow``, store it with its flow token, and point Flowdock's
    "configure" link at our configuration page.

    ``token`` may be unsaved; it is saved together with the source. If storing fails
    after Flowdock created the source, the source is removed from Flowdock again.
    """
    path = flow_path(flow)
    created = user_request(
        token,
        "POST",
        f"/flows/{path}/sources",
        json={"name": name, "external_url": oauth.site_url(request, "/")},
    )
    source = Source(
        name=name,
        flow_token=created["flow_token"],
        application=token.application,
        flowdock_id=str(created["id"]),
        flow_id=str(flow["id"]),
        flow_name=flow["name"],
        flow_path=path,
    )
    if scope is not None:
        source.scope = scope
    try:
        with transaction.atomic():
            token.save()
            source.token = token
            source.save()
    except Exception:
        _remove_quietly(token, source)
        raise
    try:
        update_source(source, configuration_url=configuration_url(request, source))
    except FlowdockError as exc:
        # The source works without it; only Flowdock's "configure" link is missing.
        logger.warning("Could not set the configuration URL of source %s: %s", source.pk, exc)
    return source


def _remove_quietly(token: OAuthToken, source: Source) -> None:
    try:
        user_request(token, "DELETE", f"/flows/{source.flow_path}/sources/{source.flowdock_id}")
    except FlowdockError as exc:
        logger.warning("Could not remove the half-made source %s: %s", source.flowdock_id, exc)


def update_source(
    source: Source, *, timeout: tuple[float, float] | None = None, **changes: str
) -> dict[str, Any]:
    """``PUT /sources`` with the source's flow token: ``error_message`` and/or
    ``configuration_url`` (an empty ``error_message`` clears it)."""
    client = FlowdockClient(source.get_api_url(), timeout=timeout)
    return client.put_source(source.flow_token, **changes)


def set_error_message(source: Source, message: str) -> None:
    """Show ``message`` in the flow (``""`` clears it) and keep it on the source."""
    update_source(source, error_message=message)
    source.error_message = message
    source.save(update_fields=["error_message"])


def remove_source(source: Source, reason: str) -> None:
    """``DELETE`` the source in Flowdock, then keep it here inactive, with its history.

    A source Flowdock already removed (410) counts as removed.
    """
    if not (source.flowdock_id and source.flow_path):
        raise FlowdockError(
            f"Source “{source.name}” was connected by hand, so its Flowdock id is unknown: "
            "remove it in the flow's sources list, then untick “active” here."
        )
    path = f"/flows/{source.flow_path}/sources/{source.flowdock_id}"
    try:
        if source.token is not None:
            user_request(source.token, "DELETE", path)
        else:
            client = FlowdockClient(source.get_api_url())
            client.request("DELETE", path, json={"flow_token": source.flow_token})
    except FlowdockSourceGoneError:
        pass
    source.deactivate(reason)


def source_refused(sender: Any, message: Message, error: Exception | None, **kwargs: Any) -> None:
    """A ``message_failed`` receiver: when Flowdock refused the flow token (401/403), the
    source keeps the reason and its flow shows it, once per distinct reason."""
    status = getattr(error, "status_code", None)
    if status not in (401, 403):
        return
    source = message.source
    reason = f"Flowdock refused the flow token ({status}): {error}"
    if source.error_message == reason:
        return  # already recorded and reported for an earlier message
    source.error_message = reason
    source.save(update_fields=["error_message"])
    report_delivery_error(source)


def report_delivery_error(source: Source) -> None:
    """Show the source's ``error_message`` in its flow, for a token Flowdock refused.

    The flow token itself was refused, so this needs the OAuth grant that created the
    source. Called from the delivery path: short timeouts, and it never raises.
    """
    token = source.token
    if not (token and source.flowdock_id and source.flow_path):
        return
    try:
        user_request(
            token,
            "PUT",
            f"/flows/{source.flow_path}/sources/{source.flowdock_id}",
            json={"error_message": source.error_message},
            timeout=REPORT_TIMEOUT,
        )
    except (FlowdockError, ValueError) as exc:  # a report must never break delivery
        logger.warning(
            "Could not show the error of source %s in Flowdock: %s", source.pk, type(exc).__name__
        )
