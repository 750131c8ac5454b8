"""The outbound schema: what the API accepts, and the repairs that make any rendered
message fit it.

Data never stops a message: values are cut to the API's limits, an invalid author
e-mail or avatar is dropped, an empty title is replaced ("Ticket #42"), characters the
API cannot carry are removed. Each repair is described, so the engine can log it and
record it on the message. What still fails validation after repair is reported with
the part of the message and the ``FlowdockMeta`` option that produced it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from rest_framework import serializers

from django_flowdock.exceptions import FlowdockRenderError
from django_flowdock.threads.options import STATUS_COLORS

TITLE_LIMIT = 255
NAME_LIMIT = 100
STATUS_LIMIT = 100
BODY_LIMIT = 8096
THREAD_ID_LIMIT = 255

# Titles and field values may contain <a> tags and nothing else.
_TAG = re.compile(r"</?\s*([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>")
# C0 controls but tab, newline and carriage return (PostgreSQL and JSON consumers
# refuse NUL, and the others render as nothing), lone surrogates, and the bidirectional
# controls (LRM, RLM, ALM, embeddings, overrides, isolates), with which a value shows
# reversed or reorders the text around it.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff"
    r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def only_links(value: str) -> None:
    bad = sorted({tag.lower() for tag in _TAG.findall(value)} - {"a"})
    if bad:
        raise serializers.ValidationError(
            f"only <a> tags are allowed here, found <{'>, <'.join(bad)}>"
        )


class AuthorSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_LIMIT)
    email = serializers.EmailField(required=False)
    avatar = serializers.URLField(required=False)


class StatusSerializer(serializers.Serializer):
    value = serializers.CharField(max_length=STATUS_LIMIT)
    color = serializers.ChoiceField(choices=sorted(STATUS_COLORS))


class FieldSerializer(serializers.Serializer):
    # The API's names; they shadow attributes of DRF's Field in the stubs only.
    label = serializers.CharField(validators=[only_links])  # type: ignore[assignment]
    value = serializers.CharField(allow_blank=True, validators=[only_links])


class ThreadSerializer(serializers.Serializer):
    title = serializers.CharField(validators=[only_links])
    body = serializers.CharField(required=False, allow_blank=True)
    external_url = serializers.URLField(required=False)
    status = StatusSerializer(required=False)
    fields = FieldSerializer(many=True, required=False)  # type: ignore[assignment]
    actions = serializers.ListField(child=serializers.DictField(), required=False)


class MessageSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=["activity", "discussion"])
    author = AuthorSerializer()
    title = serializers.CharField(validators=[only_links])
    body = serializers.CharField(required=False, allow_blank=True, max_length=BODY_LIMIT)
    external_thread_id = serializers.CharField(max_length=THREAD_ID_LIMIT)
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


class Repairs(list[str]):
    """What was changed to make a message valid, one line per repair."""


def _valid(validator: Any, value: str) -> bool:
    try:
        validator(value)
    except ValidationError:
        return False
    return True


_email = EmailValidator()
_url = URLValidator(schemes=["http", "https"])


def _clean(value: Any, path: str, repairs: Repairs) -> Any:
    if isinstance(value, str):
        cleaned = _CONTROL.sub("", value)
        if cleaned != value:
            repairs.append(f"{path}: removed control characters")
        return cleaned
    if isinstance(value, dict):
        return {k: _clean(v, f"{path}.{k}" if path else k, repairs) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, path, repairs) for v in value]
    return value


def _cut(holder: dict[str, Any], key: str, limit: int, path: str, repairs: Repairs) -> None:
    value = holder.get(key)
    if isinstance(value, str) and len(value) > limit:
        holder[key] = value[: limit - 1] + "…"
        repairs.append(f"{path}: cut from {len(value)} to {limit} characters")


def repair(message: dict[str, Any], *, title: str, author: str) -> tuple[dict[str, Any], Repairs]:
    """``message`` made valid for the API, and what was repaired. ``title`` replaces an
    empty title, ``author`` an empty author name."""
    repairs = Repairs()
    message = _clean(message, "", repairs)
    who = message.setdefault("author", {})
    if not who.get("name"):
        who["name"] = author
        repairs.append(f"author.name: empty, set to {author!r}")
    _cut(who, "name", NAME_LIMIT, "author.name", repairs)
    for key, validator in (("email", _email), ("avatar", _url)):
        if key in who and not _valid(validator, who[key]):
            repairs.append(f"author.{key}: {who.pop(key)!r} is not valid, dropped")
    thread = message.setdefault("thread", {})
    for holder, key, path in ((message, "title", "title"), (thread, "title", "thread.title")):
        if not str(holder.get(key) or "").strip():
            holder[key] = title
            repairs.append(f"{path}: empty, set to {title!r}")
        _cut(holder, key, TITLE_LIMIT, path, repairs)
    if "body" in message:
        _cut(message, "body", BODY_LIMIT, "body", repairs)
    if "external_url" in thread and not _valid(_url, thread["external_url"]):
        repairs.append(f"thread.external_url: {thread.pop('external_url')!r} is not valid, dropped")
    status = thread.get("status")
    if status is not None and not str(status.get("value") or "").strip():
        # Blank once cleaned (a status field holding a space or a control character).
        repairs.append("thread.status: blank value, status left out")
        del thread["status"]
        status = None
    if status is not None:
        if status.get("color") not in STATUS_COLORS:
            repairs.append(f"thread.status.color: {status.get('color')!r} is not a colour, grey")
            status["color"] = "grey"
        _cut(status, "value", STATUS_LIMIT, "thread.status.value", repairs)
    fields = thread.get("fields")
    if fields:
        kept = [f for f in fields if str(f.get("label") or "").strip()]
        if len(kept) != len(fields):
            repairs.append(f"thread.fields: {len(fields) - len(kept)} without a label dropped")
        # Rendering leaves empty fields out; these were emptied by the cleaning above.
        valued = [f for f in kept if str(f.get("value") or "").strip()]
        if len(valued) != len(kept):
            repairs.append(f"thread.fields: {len(kept) - len(valued)} left empty dropped")
        thread["fields"] = valued
    if "tags" in message:
        tags = [tag for tag in message["tags"] if tag and tag.strip()]
        if len(tags) != len(message["tags"]):
            repairs.append("tags: empty tags dropped")
        message["tags"] = tags
    return message, repairs


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


# What DRF's CharField refuses in any value: NUL and lone surrogates.
_REFUSED = re.compile(r"[\x00\ud800-\udfff]")


def _text(
    value: Any, *, blank: bool = False, limit: int | None = None, links: bool = False
) -> bool:
    """Whether a ``CharField`` of the serializers above surely takes ``value``."""
    if not isinstance(value, str) or _REFUSED.search(value):
        return False
    stripped = value.strip()
    if not (stripped or blank) or (limit is not None and len(stripped) > limit):
        return False
    return not links or "<" not in value or {t.lower() for t in _TAG.findall(value)} <= {"a"}


def _surely_valid(message: Any) -> bool:
    """Whether ``MessageSerializer`` surely accepts ``message``, in plain Python (a
    tenth of its time). Any doubt says no, and the serializer decides (with its error
    messages): a message this takes is one it takes, which ``test_schema`` checks
    against it with generated messages."""
    if type(message) is not dict or message.get("event") not in ("activity", "discussion"):
        return False
    author, thread = message.get("author"), message.get("thread")
    if type(author) is not dict or type(thread) is not dict:
        return False
    if not _text(author.get("name"), limit=NAME_LIMIT):
        return False
    if "email" in author and not (
        _text(author["email"]) and _valid(_email, author["email"].strip())
    ):
        return False
    if "avatar" in author and not (
        _text(author["avatar"]) and _valid(_url, author["avatar"].strip())
    ):
        return False
    if not (
        _text(message.get("title"), links=True)
        and _text(message.get("external_thread_id"), limit=THREAD_ID_LIMIT)
        and ("body" not in message or _text(message["body"], blank=True, limit=BODY_LIMIT))
        and _text(thread.get("title"), links=True)
        and ("body" not in thread or _text(thread["body"], blank=True))
    ):
        return False
    if "external_url" in thread and not (
        _text(thread["external_url"]) and _valid(_url, thread["external_url"].strip())
    ):
        return False
    if "status" in thread:
        status = thread["status"]
        if not (
            type(status) is dict
            and _text(status.get("value"), limit=STATUS_LIMIT)
            and isinstance(status.get("color"), str)
            and status["color"] in STATUS_COLORS
        ):
            return False
    fields = thread.get("fields", [])
    if type(fields) is not list or not all(
        type(f) is dict
        and _text(f.get("label"), links=True)
        and _text(f.get("value"), blank=True, links=True)
        for f in fields
    ):
        return False
    actions = thread.get("actions", [])
    if type(actions) is not list or not all(
        type(a) is dict and all(type(k) is str for k in a) for a in actions
    ):
        return False
    tags = message.get("tags", [])
    return type(tags) is list and all(_text(tag) for tag in tags)


def validate_message(message: dict[str, Any], label: str) -> dict[str, Any]:
    """Return ``message`` if the API would accept it, else raise naming the option."""
    if _surely_valid(message):
        return message
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
    raise FlowdockRenderError(
        f"{label} produced a Flowdock message the API would refuse: "
        + "; ".join(problems)
        + ". Fix the FlowdockMeta option or get_flowdock_* method named."
    )
