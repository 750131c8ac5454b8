"""Validation of what integrations send, with Flowdock's error wording."""

from typing import Any

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.fields import empty

from .sanitize import disallowed_tags

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
ERROR_MESSAGES = {
    "required": BLANK,
    "blank": BLANK,
    "null": BLANK,
    "invalid_choice": "is not included in the list",
}


def text(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(error_messages=ERROR_MESSAGES, **kwargs)


def links_only(value: str) -> str:
    tags = disallowed_tags(value)
    if tags:
        listed = ", ".join(f"<{tag}>" for tag in sorted(tags))
        raise serializers.ValidationError(f"may only contain <a> tags, found {listed}")
    return value


class AuthorSerializer(serializers.Serializer):
    name = text()
    avatar = serializers.URLField(required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)


class StatusSerializer(serializers.Serializer):
    value = text()
    color = serializers.ChoiceField(choices=STATUS_COLORS, error_messages=ERROR_MESSAGES)


class FieldSerializer(serializers.Serializer):
    label = text()
    value = text(allow_blank=True, validators=[links_only])


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


class ThreadSerializer(serializers.Serializer):
    title = text(validators=[links_only])
    body = serializers.CharField(required=False, allow_blank=True, default="")
    external_url = serializers.URLField(required=False, allow_blank=True, default="")
    status = StatusSerializer(required=False, allow_null=True, default=None)
    fields = FieldSerializer(many=True, required=False, default=list)
    actions = serializers.ListField(required=False, default=list)

    def validate_actions(self, actions: list[Any]) -> list[dict[str, Any]]:
        valid, errors = [], []
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


class TagsField(serializers.ListField):
    """A JSON list or, as in form posts, one comma-separated string."""

    child = serializers.CharField()

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            data = [tag.strip() for tag in data.split(",") if tag.strip()]
        return super().to_internal_value(data)


class MessageSerializer(serializers.Serializer):
    event = serializers.ChoiceField(
        choices=("activity", "discussion"), error_messages=ERROR_MESSAGES
    )
    author = AuthorSerializer(error_messages=ERROR_MESSAGES)
    title = text(validators=[links_only])
    body = serializers.CharField(required=False, allow_blank=True, default="")
    external_thread_id = serializers.CharField(required=False, allow_blank=True, default="")
    thread_id = serializers.CharField(required=False, allow_blank=True, default="")
    thread = ThreadSerializer(required=False, allow_null=True, default=None)
    tags = TagsField(required=False, default=list)
    uuid = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["external_thread_id"] and not attrs["thread_id"]:
            raise serializers.ValidationError({"external_thread_id": [BLANK]})
        return attrs


class SourceSerializer(serializers.Serializer):
    name = text(max_length=200)
    external_url = serializers.URLField(required=False, allow_blank=True, default="")


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
