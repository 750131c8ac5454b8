"""The JSON Flowdock returns for each resource, plus the sandbox's own records.

URLs are absolute and built from the request's host, because the sandbox may be
reached on any port.
"""

from datetime import datetime
from typing import Any

from django.http import HttpRequest

from .models import Application, Flow, Message, Organization, Source, Thread, User


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as Flowdock writes them."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def organization_json(organization: Organization, base: str) -> dict[str, Any]:
    return {
        "id": organization.pk,
        "name": organization.name,
        "parameterized_name": organization.parameterized_name,
        "active": True,
        "url": f"{base}/organizations/{organization.parameterized_name}",
    }


def flow_json(flow: Flow, base: str) -> dict[str, Any]:
    return {
        "id": flow.id,
        "name": flow.name,
        "parameterized_name": flow.parameterized_name,
        "organization": organization_json(flow.organization, base),
        "open": True,
        "joined": True,
        "url": f"{base}{flow.path}",
        "web_url": f"{base}/app{flow.path.removeprefix('/flows')}",
        "access_mode": "organization",
    }


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "nick": user.nick,
        "avatar": user.avatar,
        "website": "",
    }


def application_json(application: Application | None, base: str) -> dict[str, Any] | None:
    if application is None:
        return None
    return {
        "id": application.pk,
        "name": application.name,
        "icon_url": application.icon_url,
        "url": f"{base}/oauth/applications/{application.pk}",
    }


def source_json(source: Source, base: str, *, flow_token: bool = False) -> dict[str, Any]:
    data = {
        "id": source.pk,
        "name": source.name,
        "url": f"{base}{source.flow.path}/sources/{source.pk}",
        "external_url": source.external_url,
        "error_message": source.error_message,
        "configuration_url": source.configuration_url,
        "created_at": timestamp(source.created_at),
        "updated_at": timestamp(source.updated_at),
        "_links": {},
        "application": application_json(source.application, base),
        "creator": user_json(source.creator),
    }
    if flow_token:
        data["flow_token"] = source.flow_token
    return data


def thread_state(thread: Thread) -> dict[str, Any]:
    """The item's latest state as the integration last sent it."""
    return {
        "id": thread.id,
        "title": thread.title,
        "body": thread.body,
        "external_url": thread.external_url,
        "status": {"value": thread.status_value, "color": thread.status_color}
        if thread.status_value or thread.status_color
        else None,
        "fields": thread.fields,
        "actions": thread.actions,
    }


def thread_json(thread: Thread) -> dict[str, Any]:
    counts = {"activity": 0, "discussion": 0}
    for message in thread.messages.all():
        counts[message.event] = counts.get(message.event, 0) + 1
    application = thread.source.application
    return {
        **thread_state(thread),
        "external_thread_id": thread.external_thread_id,
        "source": {
            "id": thread.source_id,
            "icon": application.icon_url if application else "",
            "application": application.name if application else thread.source.name,
        },
        "activities": counts["activity"],
        "internal_comments": 0,
        "external_comments": counts["discussion"],
        "created_at": timestamp(thread.created_at),
        "updated_at": timestamp(thread.updated_at),
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "event": message.event,
        "app": "influx",
        "flow": message.flow_id,
        "thread_id": message.thread_id,
        "thread": message.thread_state,
        "title": message.title,
        "body": message.body,
        "author": message.author,
        "tags": message.tags,
        "uuid": message.uuid or None,
        "attachments": [],
        "sent": int(message.created_at.timestamp() * 1000),
        "created_at": timestamp(message.created_at),
    }


def message_record(message: Message) -> dict[str, Any]:
    """A stored message for tests: the API shape plus which source and item sent it."""
    return {
        **message_json(message),
        "source_id": message.source_id,
        "external_thread_id": message.thread.external_thread_id,
    }


def thread_record(thread: Thread) -> dict[str, Any]:
    return {
        **thread_json(thread),
        "flow": thread.flow_id,
        "source_id": thread.source_id,
        "message_count": thread.messages.count(),
    }


def source_record(source: Source, base: str) -> dict[str, Any]:
    return {
        **source_json(source, base),
        "flow": source.flow_id,
        "removed": source.removed_at is not None,
    }
