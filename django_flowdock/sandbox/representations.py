"""The JSON Flowdock returns for each resource, plus the sandbox's own records.

URLs are absolute and built from the request's host, because the sandbox may be
reached on any port.
"""

from datetime import datetime
from typing import Any

from django.http import HttpRequest

from .images import thumbnail_size
from .models import (
    Application,
    Attachment,
    Flow,
    Message,
    Organization,
    Source,
    Thread,
    User,
)


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


def flow_json(flow: Flow, base: str, *, users: list[User] | None = None) -> dict[str, Any]:
    """A flow; with ``users`` (single flows always, lists with ``users=1``) its users."""
    url = f"{base}{flow.path}"
    data = {
        "id": flow.id,
        "name": flow.name,
        "parameterized_name": flow.parameterized_name,
        "organization": organization_json(flow.organization, base),
        "unread_mentions": 0,
        "open": True,
        "joined": True,
        "url": url,
        "web_url": f"{base}/app{flow.path.removeprefix('/flows')}",
        "join_url": f"{base}/invitations/{flow.id}-{flow.parameterized_name}",
        "access_mode": "organization",
        # The API resources of the flow and the methods the user may use on them.
        "links": {
            "self": {"href": url, "methods": ["GET"]},
            "messages": {"href": f"{url}/messages", "methods": ["GET", "POST"]},
            "threads": {"href": f"{url}/threads", "methods": ["GET"]},
            "sources": {"href": f"{url}/sources", "methods": ["GET", "POST"]},
            "users": {"href": f"{url}/users", "methods": ["GET"]},
        },
    }
    if users is not None:
        data["users"] = [flow_user_json(user) for user in users]
    return data


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "nick": user.nick,
        "avatar": user.avatar,
        "website": None,
    }


def flow_user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "nick": user.nick,
        "name": user.name,
        "email": user.email,
        "avatar": user.avatar,
        "status": user.status or None,
        "disabled": False,
        "last_activity": None,
        "last_ping": None,
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


def thread_source_json(thread: Thread) -> dict[str, Any] | None:
    if thread.source is None:
        return None
    application = thread.source.application
    return {
        "id": application.pk if application else thread.source_id,
        "icon": application.icon_url if application else "",
        "application": application.name if application else thread.source.name,
    }


def thread_counts(thread: Thread) -> dict[str, int]:
    counts = {"activity": 0, "message": 0, "comment": 0, "discussion": 0}
    for message in thread.messages.all():
        counts[message.event] = counts.get(message.event, 0) + 1
    return {
        "activities": counts["activity"],
        "internal_comments": counts["message"] + counts["comment"],
        "external_comments": counts["discussion"],
    }


def thread_state(thread: Thread) -> dict[str, Any]:
    """The thread as messages carry it: the item's state, its source and counters."""
    return {
        "id": thread.id,
        "title": thread.title,
        "body": thread.body,
        "external_url": thread.external_url,
        "status": {"color": thread.status_color, "value": thread.status_value}
        if thread.status_value or thread.status_color
        else None,
        "actions": thread.actions,
        "fields": thread.fields,
        "source": thread_source_json(thread),
        **thread_counts(thread),
    }


def thread_json(thread: Thread) -> dict[str, Any]:
    return {
        **thread_state(thread),
        "created_at": timestamp(thread.created_at),
        "updated_at": timestamp(thread.updated_at),
    }


def attachment_json(attachment: Attachment, flow: Flow) -> dict[str, Any]:
    """An attachment; an image adds its ``image`` size and a ``thumbnail``, as in the
    file sample of Flowdock's message-types docs."""
    folder = f"/files/{flow.id}/{attachment.token}"
    data: dict[str, Any] = {
        "content_type": attachment.content_type,
        "content_id": attachment.content_id or None,
        "file_name": attachment.file_name,
        "file_size": attachment.size,
        "path": f"{folder}/{attachment.file_name}",
    }
    if attachment.width and attachment.height:
        width, height = thumbnail_size(attachment.width, attachment.height)
        data["image"] = {"width": attachment.width, "height": attachment.height}
        data["thumbnail"] = {
            "path": f"{folder}/thumb/{attachment.file_name}",
            "width": width,
            "height": height,
        }
    return data


def message_json(message: Message) -> dict[str, Any]:
    """A message as the REST and Streaming APIs return it; inbox messages add their
    title, body and author, threaded ones their thread."""
    attachments = [attachment_json(item, message.flow) for item in message.attachments.all()]
    data: dict[str, Any] = {
        "id": message.pk,
        "event": message.event,
        "app": message.app,
        "flow": message.flow_id,
        "content": message.content,
        "tags": message.tags,
        "uuid": message.uuid or None,
        "user": str(message.user_id or 0),
        "attachments": attachments,
        "sent": int(message.created_at.timestamp() * 1000),
        "edited": int(message.edited_at.timestamp() * 1000) if message.edited_at else None,
        "created_at": timestamp(message.created_at),
    }
    if message.event == "comment" and message.parent is not None:
        data["content"] = {"title": _parent_title(message.parent), "text": message.content}
    if message.event == "file" and attachments:
        data["content"] = attachments[0]
    if message.app == "influx":
        data.update(title=message.title, body=message.body or None, author=message.author)
    if message.thread_id:
        data.update(thread_id=message.thread_id, thread=message.thread_state)
    return data


def _parent_title(parent: Message) -> str:
    if parent.title:
        return parent.title
    return parent.content if isinstance(parent.content, str) else ""


def message_record(message: Message) -> dict[str, Any]:
    """A stored message for tests: the API shape plus which source and item sent it, and
    whether its uuid had been used before."""
    return {
        **message_json(message),
        "source_id": message.source_id,
        "external_thread_id": message.thread.external_thread_id if message.thread else "",
        "repeated": message.repeated,
    }


def thread_record(thread: Thread) -> dict[str, Any]:
    return {
        **thread_json(thread),
        "external_thread_id": thread.external_thread_id,
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
