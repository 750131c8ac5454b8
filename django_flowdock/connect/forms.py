"""Forms for connecting a flow and configuring a source."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_flowdock.mixins import thread_models
from django_flowdock.models import Source

#: Objects offered per scope model; a project with more should set scopes in the admin.
SCOPE_CHOICES_LIMIT = 200
EVENTS = [
    ("created", _("created")),
    ("updated", _("updated")),
    ("deleted", _("deleted")),
    ("commented", _("commented")),
]


def model_choices() -> list[tuple[str, str]]:
    """Thread models by label; the app's name is added where two share a name."""
    names = [str(model._meta.verbose_name_plural).capitalize() for model in thread_models()]
    return [
        (
            model._meta.label_lower,
            f"{name} ({model._meta.app_config.verbose_name})" if names.count(name) > 1 else name,
        )
        for model, name in zip(thread_models(), names, strict=True)
    ]


def scope_models() -> list[type[models.Model]]:
    """Models named by a ``FlowdockMeta.scope`` path of some thread model."""
    found: list[type[models.Model]] = []
    for model in thread_models():
        path = model.flowdock_options().get("scope")
        if not isinstance(path, str):
            continue
        target: Any = model
        for name in path.split("."):
            try:
                target = target._meta.get_field(name).related_model
            except (FieldDoesNotExist, AttributeError):
                target = None
                break
        if target is not None and target not in found:
            found.append(target)
    return found


def scope_choices() -> list[tuple[Any, Any]]:
    """``"<content type id>:<pk>"`` choices grouped by model, after "everything"."""
    choices: list[tuple[Any, Any]] = [("", _("Everything (no scope)"))]
    for model in scope_models():
        content_type = ContentType.objects.get_for_model(model)
        objects = model._default_manager.all()[:SCOPE_CHOICES_LIMIT]
        group = [(f"{content_type.pk}:{obj.pk}", str(obj)) for obj in objects]
        if group:
            choices.append((str(model._meta.verbose_name).capitalize(), group))
    return choices


def scope_value(source: Source) -> str:
    if not source.scope_content_type_id:
        return ""
    return f"{source.scope_content_type_id}:{source.scope_object_id}"


class ScopeField(forms.ChoiceField):
    """Picks one object of a scope model (or none); cleans to the object or None."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", _("Scope"))
        kwargs.setdefault(
            "help_text", _("Only items belonging to this object are shown in the flow.")
        )
        super().__init__(choices=scope_choices, required=False, **kwargs)

    def clean(self, value: Any) -> models.Model | None:
        value = super().clean(value)
        if not value:
            return None
        type_id, _sep, pk = value.partition(":")
        model = ContentType.objects.get_for_id(int(type_id)).model_class()
        if model is None:
            raise forms.ValidationError(_("That kind of object no longer exists; pick another."))
        try:
            return model._default_manager.get(pk=pk)
        except ObjectDoesNotExist as exc:
            raise forms.ValidationError(_("That object no longer exists; pick another.")) from exc


class ScopeFormMixin:
    """Drops the scope field when no thread model declares a scope."""

    fields: dict[str, forms.Field]

    def drop_unused_scope(self) -> None:
        if not scope_models():
            del self.fields["scope"]


class ConnectForm(ScopeFormMixin, forms.Form):
    """Name the new source and, optionally, what it is scoped to."""

    name = forms.CharField(
        label=_("Source name"),
        max_length=200,
        help_text=_("What the flow will call this connection, e.g. the project's name."),
    )
    scope = ScopeField()

    def __init__(self, *args: Any, flows: list[dict[str, Any]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if flows is not None:
            self.flows = {str(flow["id"]): flow for flow in flows}
            self.fields = {
                "flow": forms.ChoiceField(
                    label=_("Flow"),
                    choices=[
                        (flow_id, f"{flow['organization']['name']} / {flow['name']}")
                        for flow_id, flow in self.flows.items()
                    ],
                ),
                **self.fields,
            }
        self.drop_unused_scope()

    def chosen_flow(self) -> dict[str, Any]:
        return self.flows[self.cleaned_data["flow"]]


class ReceivesFields(forms.Form):
    """The item kinds and events a source receives (``Source.settings``), as ticked
    boxes; shared by the Configuration URI page and the admin's Source form."""

    models = forms.MultipleChoiceField(
        label=_("Items"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every kind of item."),
    )
    events = forms.MultipleChoiceField(
        label=_("Events"),
        required=False,
        choices=EVENTS,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every event."),
    )


class ConfigureForm(ScopeFormMixin, ReceivesFields):
    """Which items and events a source receives, and its scope (``Source.settings``)."""

    scope = ScopeField()

    def __init__(self, *args: Any, source: Source, **kwargs: Any) -> None:
        self.source = source
        kwargs.setdefault(
            "initial",
            {
                "models": source.settings.get("models", []),
                "events": source.settings.get("events", []),
                "scope": scope_value(source),
            },
        )
        super().__init__(*args, **kwargs)
        models_field = self.fields["models"]
        assert isinstance(models_field, forms.MultipleChoiceField)
        models_field.choices = model_choices()
        self.drop_unused_scope()

    def save(self) -> Source:
        source = self.source
        settings = {**source.settings}
        for key in ("models", "events"):
            if self.cleaned_data[key]:
                settings[key] = self.cleaned_data[key]
            else:
                settings.pop(key, None)
        source.settings = settings
        fields = ["settings"]
        if "scope" in self.fields:
            scope = self.cleaned_data["scope"]
            source.scope_content_type = (
                ContentType.objects.get_for_model(scope) if scope is not None else None
            )
            source.scope_object_id = str(scope.pk) if scope is not None else ""
            fields += ["scope_content_type", "scope_object_id"]
        source.save(update_fields=fields)
        return source
