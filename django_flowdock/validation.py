"""Validation of messages against the API's rules before they are queued (DRF)."""

from __future__ import annotations

import functools
import re
from typing import Any

from rest_framework import serializers

from .exceptions import FlowdockPayloadError
from .options import STATUS_COLORS, Options

# Titles and field values may contain <a> tags and nothing else.
_TAG = re.compile(r"</?\s*([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>")


def only_links(value: str) -> str:
    bad = sorted({tag.lower() for tag in _TAG.findall(value)} - {"a"})
    if bad:
        raise serializers.ValidationError(
            f"only <a> tags are allowed here, found <{'>, <'.join(bad)}>"
        )
    return value


class AuthorSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    email = serializers.EmailField(required=False)
    avatar = serializers.URLField(required=False)


class StatusSerializer(serializers.Serializer):
    value = serializers.CharField(max_length=100)
    color = serializers.ChoiceField(choices=sorted(STATUS_COLORS))


class FieldSerializer(serializers.Serializer):
    label = serializers.CharField(validators=[only_links])
    value = serializers.CharField(allow_blank=True, validators=[only_links])


class ThreadSerializer(serializers.Serializer):
    title = serializers.CharField(validators=[only_links])
    body = serializers.CharField(required=False, allow_blank=True)
    external_url = serializers.URLField(required=False)
    status = StatusSerializer(required=False)
    fields = FieldSerializer(many=True, required=False)
    actions = serializers.ListField(child=serializers.DictField(), required=False)


class MessageSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=["activity", "discussion"])
    author = AuthorSerializer()
    title = serializers.CharField(validators=[only_links])
    body = serializers.CharField(required=False, allow_blank=True, max_length=8096)
    external_thread_id = serializers.CharField(max_length=255)
    thread = ThreadSerializer()
    tags = serializers.ListField(child=serializers.CharField(), required=False)


# Which FlowdockMeta option produced each part of the message, for error messages.
_OPTION_FOR = {
    "author": "author",
    "title": "the activity_title.html / discussion_title.html template",
    "body": "body",
    "external_thread_id": "get_flowdock_thread_id()",
    "thread.title": "title",
    "thread.body": "body",
    "thread.external_url": "external_url",
    "thread.status": "status / status_colors",
    "thread.fields": "fields",
    "thread.actions": "get_flowdock_actions()",
    "tags": "tags",
}


def _flatten(errors: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(errors, dict):
        return [
            item
            for key, value in errors.items()
            for item in _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(errors, list) and errors and not isinstance(errors[0], str):
        return [item for value in errors if value for item in _flatten(value, prefix)]
    return [(prefix, str(error)) for error in errors]


@functools.cache
def _message_serializer() -> MessageSerializer:
    # Built once: binding a serializer's nested fields costs more than validating a
    # message, and run_validation() keeps no state on the instance.
    return MessageSerializer()


def validate_message(message: dict[str, Any], options: Options) -> dict[str, Any]:
    """Return ``message`` if the API would accept it, else raise naming the option."""
    try:
        _message_serializer().run_validation(message)
    except serializers.ValidationError as exc:
        errors = exc.detail
    else:
        return message
    problems = []
    for path, error in _flatten(errors):
        parts = path.split(".")
        option = _OPTION_FOR.get(".".join(parts[:2])) or _OPTION_FOR.get(parts[0], parts[0])
        problems.append(f"{path}: {error} (from FlowdockMeta {option})")
    raise FlowdockPayloadError(
        f"{options.label} produced a Flowdock message the API would refuse: "
        + "; ".join(problems)
        + ". Fix the FlowdockMeta option or get_flowdock_* method named."
    )
