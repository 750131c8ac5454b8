"""Validation of what integrations send, with Flowdock's error wording."""

from typing import TYPE_CHECKING, Any

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.fields import empty

from .tags import split_tags

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise

STATUS_COLORS = (
    "red",
    "green",
    "yellow",
    "cyan",
    "orange",
    "grey",
    "black",
    "lime",
    "purple",
    "blue",
)
BLANK = "can't be blank"
# The docs cap chat content at 8096 characters; the sandbox holds bodies to the same.
CONTENT_LIMIT = 8096
TOO_LONG = "is too long (maximum is {max_length} characters)"
ERROR_MESSAGES: "dict[str, str | StrPromise]" = {
    "required": BLANK,
    "blank": BLANK,
    "null": BLANK,
    "invalid_choice": "is not included in the list",
    "max_length": TOO_LONG,
}
INBOX_EVENTS = ("activity", "discussion")
CHAT_EVENTS = ("message", "comment", "status", "file")


class OmittedIfNull:
    """``null`` counts as not given: the docs' own samples send ``"body": null``."""

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            data = empty
        return super().validate_empty_values(data)  # type: ignore[misc]


class OptionalText(OmittedIfNull, serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("default", "")
        kwargs.setdefault("error_messages", ERROR_MESSAGES)
        super().__init__(**kwargs)


class OptionalURL(OmittedIfNull, serializers.URLField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_blank=True, default="", **kwargs)


def text(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(error_messages=ERROR_MESSAGES, **kwargs)


class OptionalEmail(OmittedIfNull, serializers.EmailField):
    def __init__(self) -> None:
        super().__init__(required=False, allow_blank=True, default="")


class AuthorSerializer(serializers.Serializer):
    name = text()
    avatar = OptionalURL()
    email = OptionalEmail()


class StatusSerializer(serializers.Serializer):
    value = text()
    color = serializers.ChoiceField(choices=STATUS_COLORS, error_messages=ERROR_MESSAGES)


class FieldSerializer(serializers.Serializer):
    # DRF's metaclass takes declared fields off the class, so this does not replace
    # Field.label as the stubs think.
    label = text()  # type: ignore[assignment]
    # Only <a> is rendered; other markup is accepted and shown as text, as in Flowdock.
    value = OptionalText()


class TargetSerializer(serializers.Serializer):
    urlTemplate = serializers.URLField(error_messages=ERROR_MESSAGES)
    httpMethod = serializers.ChoiceField(
        choices=("GET", "POST", "PUT", "PATCH", "DELETE"), default="POST"
    )


class ActionSerializer(serializers.Serializer):
    """A schema.org action; the whole posted object is kept, these keys are checked."""

    type = serializers.ChoiceField(
        choices=("ViewAction", "UpdateAction"), error_messages=ERROR_MESSAGES
    )
    name = text()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # "@type" is not a valid Python identifier, so declare it under another name.
        fields["@type"] = fields.pop("type")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        action = dict(self.initial_data)
        if action["@type"] == "ViewAction":
            try:
                serializers.URLField(error_messages=ERROR_MESSAGES).run_validation(
                    action.get("url", empty)
                )
            except serializers.ValidationError as error:
                raise serializers.ValidationError({"url": error.detail}) from error
            return action
        if not isinstance(action.get("target"), dict):
            raise serializers.ValidationError({"target": [BLANK]})
        target = TargetSerializer(data=action["target"])
        if not target.is_valid():
            raise serializers.ValidationError({"target": target.errors})
        action["target"] = {**action["target"], **target.validated_data}
        return action


class NullableList(OmittedIfNull, serializers.ListField):
    pass


class NullableFields(OmittedIfNull, serializers.ListSerializer):
    pass


class ThreadSerializer(serializers.Serializer):
    title = text()
    body = OptionalText(max_length=CONTENT_LIMIT)
    external_url = OptionalURL()
    status = StatusSerializer(required=False, allow_null=True, default=None)
    # Taken off the class by DRF's metaclass, as ``label`` above: not Serializer.fields.
    fields = NullableFields(  # type: ignore[assignment]
        child=FieldSerializer(), required=False, default=list
    )
    actions = NullableList(required=False, default=list)

    def validate_actions(self, actions: list[Any]) -> list[dict[str, Any]]:
        valid: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for action in actions:
            serializer = ActionSerializer(data=action)
            if serializer.is_valid():
                valid.append(serializer.validated_data)
                errors.append({})
            else:
                errors.append(serializer.errors)
        if any(errors):
            raise serializers.ValidationError(errors)
        return valid


class TagsField(OmittedIfNull, serializers.Field):
    """A JSON list or, as in form posts, one comma-separated string."""

    def __init__(self) -> None:
        super().__init__(required=False, default=list)

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, str | list):
            raise serializers.ValidationError("must be a list or a comma-separated string")
        return split_tags(data)

    def to_representation(self, value: list[str]) -> list[str]:
        return value


class MessageSerializer(serializers.Serializer):
    """An ``activity`` or ``discussion``: what integrations post to the team inbox."""

    event = serializers.ChoiceField(choices=INBOX_EVENTS, error_messages=ERROR_MESSAGES)
    author = AuthorSerializer(error_messages=ERROR_MESSAGES)
    title = text()
    body = OptionalText(max_length=CONTENT_LIMIT)
    external_thread_id = OptionalText()
    thread_id = OptionalText()
    thread = ThreadSerializer(error_messages=ERROR_MESSAGES)
    tags = TagsField()
    uuid = OptionalText()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["external_thread_id"] and not attrs["thread_id"]:
            raise serializers.ValidationError({"external_thread_id": [BLANK]})
        return attrs


class ChatMessageSerializer(serializers.Serializer):
    """A ``message``, ``comment`` or ``status`` a user posts; ``file`` content is separate."""

    event = serializers.ChoiceField(choices=CHAT_EVENTS, error_messages=ERROR_MESSAGES)
    content = text(max_length=CONTENT_LIMIT, trim_whitespace=False)
    thread_id = OptionalText()
    message = serializers.IntegerField(required=False, allow_null=True, default=None)
    tags = TagsField()
    uuid = OptionalText()
    external_user_name = OptionalText()


class SourceSerializer(serializers.Serializer):
    name = text(max_length=200)
    external_url = OptionalURL()


class SourceUpdateSerializer(serializers.Serializer):
    error_message = serializers.CharField(required=False, allow_blank=True)
    configuration_url = serializers.URLField(required=False, allow_blank=True)


def nest_form_data(data: QueryDict) -> dict[str, Any]:
    """Rails-style form keys (``thread[status][color]``, ``tags[]``) as nested JSON.

    Flowdock is a Rails app, so form posts nest with brackets; keys made only of
    digits (``thread[fields][0][label]``) become list positions.
    """
    nested: dict[str, Any] = {}
    for key in data:
        head, _, rest = key.partition("[")
        path = [head, *rest.removesuffix("]").split("][")] if rest else [head]
        value: str | list[str] | None
        if path[-1] == "":
            path, value = path[:-1], data.getlist(key)
        else:
            value = data.get(key)
        node = nested
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return _lists_from_numbered_dicts(nested)


def _lists_from_numbered_dicts(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _lists_from_numbered_dicts(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted
