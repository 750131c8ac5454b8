"""Admin screens: OAuth applications, sources, the delivery log, Flowdock users."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import models, router, transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import select_template
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import formats, timezone
from django.utils.decorators import method_decorator
from django.utils.functional import cached_property
from django.utils.html import escape, format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.text import Truncator, capfirst
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_post_parameters

from django_flowdock.api import oauth, sources
from django_flowdock.api.client import FlowdockClient, client_for
from django_flowdock.connect import views
from django_flowdock.connect.forms import (
    EVENTS,
    SCOPE_CHOICES_LIMIT,
    ConnectForm,
    ReceivesFields,
    ScopeField,
    model_choices,
    scope_models,
    scope_value,
)
from django_flowdock.exceptions import FlowdockError
from django_flowdock.management.commands.flowdock_resync import queue_current_state
from django_flowdock.mixins import FlowdockComment, FlowdockThread, thread_models
from django_flowdock.models import Change, FlowdockUser, Message, OAuthApplication, Source
from django_flowdock.threads.render import inline_html
from django_flowdock.threads.schema import TITLE_LIMIT

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class SecretInput(forms.PasswordInput):
    """Never renders the stored secret; an empty submission keeps it."""

    def __init__(self, attrs=None):
        super().__init__(attrs, render_value=False)


class SecretFieldsForm(forms.ModelForm):
    """A form whose ``secret_fields`` are write-only: required when adding, optional
    (blank keeps the stored value) when changing."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            field = self.fields[name]
            field.widget = SecretInput()
            if self.instance.pk:
                field.required = False
                field.help_text = _("Stored encrypted. Leave empty to keep the current value.")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        for name in self.secret_fields:
            if self.instance.pk and not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class OAuthApplicationForm(SecretFieldsForm):
    secret_fields = ("client_secret",)
    api_url = forms.URLField(
        label=_("API URL"),
        required=False,
        help_text=_('Leave empty to use FLOWDOCK["API_URL"].'),
        assume_scheme="https",
    )

    class Meta:
        model = OAuthApplication
        fields = ["name", "client_id", "client_secret", "api_url", "offline_access"]


def scope_objects_fit() -> bool:
    """Whether every scope model's objects fit one select (else scopes are typed by id)."""
    return all(model._default_manager.count() <= SCOPE_CHOICES_LIMIT for model in scope_models())


class SourceForm(ReceivesFields, SecretFieldsForm):
    """A source's token, and what it receives: its scope, item kinds and events.

    The scope is one select of the scope models' objects while they fit one, else a
    scope type and a validated id. Item kinds and events are stored in ``settings``
    (``{"models": [...], "events": [...]}``); other keys there are kept.
    """

    secret_fields = ("flow_token",)
    scope_object = ScopeField(
        help_text=_(
            "Only items belonging to this object reach the flow; the scope objects are "
            "those named by a thread model's FlowdockMeta.scope."
        )
    )

    class Meta:
        model = Source
        fields = [
            "name",
            "flow_token",
            "flow_name",
            "active",
            "scope_content_type",
            "scope_object_id",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        source = self.instance
        settings = source.settings if isinstance(source.settings, dict) else {}
        for name, choices in (("models", model_choices()), ("events", EVENTS)):
            current = settings.get(name)
            current = [str(value) for value in current] if isinstance(current, list) else []
            known = {value for value, _label in choices}
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            # Values no longer offered stay ticked, so saving the form keeps them.
            field.choices = list(choices) + [
                (value, _("%(value)s (not offered any more)") % {"value": value})
                for value in current
                if value not in known
            ]
            self.initial.setdefault(name, current)
        if "scope_content_type" in self.fields:
            del self.fields["scope_object"]
            types = [ContentType.objects.get_for_model(model).pk for model in scope_models()]
            if source.scope_content_type_id:
                types.append(source.scope_content_type_id)
            content_type_field = self.fields["scope_content_type"]
            assert isinstance(content_type_field, forms.ModelChoiceField)
            content_type_field.queryset = ContentType.objects.filter(pk__in=types)
            content_type_field.help_text = _("Empty: the source receives items of every scope.")
            self.fields["scope_object_id"].help_text = _(
                "The id of the object of that type, as in its admin page's address."
            )
        else:
            value = scope_value(source)
            scope_field = self.fields["scope_object"]
            assert isinstance(scope_field, ScopeField)
            # Reading choices gives them normalized (an iterable); the stubs give the
            # setter's wider input type.
            grouped: list[Any] = list(scope_field.choices)  # type: ignore[arg-type]
            offered = {v for _group, options in grouped[1:] for v, _label in options}
            if value and value not in offered:
                grouped.append((_("Current"), [(value, str(source.scope or value))]))
                scope_field.choices = grouped
            self.initial.setdefault("scope_object", value)

    def clean(self):
        cleaned = super().clean()
        if "scope_object" in self.fields:
            return cleaned
        content_type = cleaned.get("scope_content_type")
        object_id = (cleaned.get("scope_object_id") or "").strip()
        cleaned["scope_object_id"] = object_id
        if content_type is None:
            if object_id and "scope_content_type" not in self.errors:
                self.add_error(
                    "scope_content_type",
                    _("Pick the type of the object with id “%(id)s”, or empty Scope ID.")
                    % {"id": object_id},
                )
            return cleaned
        model = content_type.model_class()
        name = model._meta.verbose_name if model else content_type.model
        if not object_id:
            self.add_error(
                "scope_object_id",
                _(
                    "Enter the id of the %(model)s this source is scoped to, or empty "
                    "Scope type to receive items of every scope."
                )
                % {"model": name},
            )
        elif model is None or not _exists(model, object_id):
            self.add_error(
                "scope_object_id",
                _(
                    "No %(model)s has the id “%(id)s”. Enter the id of an existing "
                    "%(model)s (its admin page's address shows it)."
                )
                % {"model": name, "id": object_id},
            )
        return cleaned

    def save(self, commit=True):
        source = self.instance
        if "scope_object" in self.fields:
            scope = self.cleaned_data.get("scope_object")
            source.scope_content_type = (
                ContentType.objects.get_for_model(scope) if scope is not None else None
            )
            source.scope_object_id = str(scope.pk) if scope is not None else ""
        settings = dict(source.settings) if isinstance(source.settings, dict) else {}
        for name in ("models", "events"):
            if self.cleaned_data.get(name):
                settings[name] = self.cleaned_data[name]
            else:
                settings.pop(name, None)
        source.settings = settings
        return super().save(commit)


def _scope_outside_models(source: Source) -> bool:
    """Whether the source is scoped to a type no FlowdockMeta.scope path names (set in
    code, e.g. through a scope property); such a scope is edited by type and id."""
    if source.scope_content_type is None:
        return False
    model = source.scope_content_type.model_class()
    return model is None or model not in scope_models()


def _exists(model: type[models.Model], pk: str) -> bool:
    try:
        return model._default_manager.filter(pk=pk).exists()
    except (ValueError, TypeError, ValidationError):
        return False  # not a valid value for the primary key's type


class SecretAdminMixin(admin.ModelAdmin):
    """Keeps secrets out of error reports for the add/change forms (a ModelAdmin base,
    so the type checker knows what ``super()`` holds)."""

    @method_decorator(sensitive_post_parameters("client_secret", "flow_token"))
    def changeform_view(self, *args, **kwargs):
        return super().changeform_view(*args, **kwargs)


@admin.register(OAuthApplication)
class OAuthApplicationAdmin(SecretAdminMixin, admin.ModelAdmin):
    form = OAuthApplicationForm
    list_display = ["name", "client_id", "api_url", "source_count", "created_at"]
    search_fields = ["name", "client_id"]
    change_form_template = "django_flowdock/admin/oauthapplication_change_form.html"

    def get_queryset(self, request):
        # Counted with the page, not one query per row.
        return super().get_queryset(request).annotate(_source_count=Count("sources"))

    @admin.display(description=_("sources"), ordering="_source_count")
    def source_count(self, obj: OAuthApplication) -> int:
        return getattr(obj, "_source_count", 0)

    def get_urls(self):
        connect_urls = [
            path(
                "<int:object_id>/connect/",
                self.admin_site.admin_view(self.connect_view),
                name="django_flowdock_oauthapplication_connect",
            ),
            path(
                "<int:object_id>/connect/flow/",
                self.admin_site.admin_view(self.connect_flow_view),
                name="django_flowdock_oauthapplication_connect_flow",
            ),
        ]
        return connect_urls + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["flowdock_uris"] = application_uris(request, obj)
            context["can_connect"] = request.user.has_perm("django_flowdock.add_source")
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def _connectable(self, request, object_id: int) -> OAuthApplication:
        if not request.user.has_perm("django_flowdock.add_source"):
            raise PermissionDenied
        return get_object_or_404(OAuthApplication, pk=object_id)

    def connect_view(self, request, object_id: int):
        """Start OAuth; the shared callback continues at :meth:`connect_flow_view`."""
        application = self._connectable(request, object_id)
        next_url = reverse(
            f"{self.admin_site.name}:django_flowdock_oauthapplication_connect_flow",
            args=[application.pk],
        )
        return HttpResponseRedirect(
            oauth.start(request, application, purpose="admin", next_url=next_url)
        )

    def connect_flow_view(self, request, object_id: int):
        """Pick one of the user's flows, name the source, create it."""
        application = self._connectable(request, object_id)
        change_url = reverse(
            f"{self.admin_site.name}:django_flowdock_oauthapplication_change",
            args=[application.pk],
        )
        try:
            token, flows = views.connection(request, "admin")
        except FlowdockError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(change_url)
        form = ConnectForm(request.POST or None, flows=flows)
        if request.method == "POST" and form.is_valid():
            try:
                source = views.connect(request, form, token, form.chosen_flow())
            except FlowdockError as exc:
                self.message_user(
                    request,
                    _("Flowdock did not create the source: %(error)s") % {"error": exc},
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    _("Connected “%(source)s” to the flow %(flow)s.")
                    % {"source": source.name, "flow": source.flow_name},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse(
                        f"{self.admin_site.name}:django_flowdock_source_change", args=[source.pk]
                    )
                )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Connect a flow"),
            "opts": self.opts,
            "original": application,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "django_flowdock/admin/connect_flow.html", context)


def application_uris(request, application: OAuthApplication) -> list[tuple[StrOrPromise, str]]:
    """The URIs to paste into Flowdock's developer application form."""
    setup = reverse("django_flowdock:setup-application", args=[application.pk])
    return [
        (_("Callback URI"), oauth.callback_url(request)),
        (_("Setup URI"), oauth.site_url(request, setup)),
        (_("Configuration URI"), oauth.site_url(request, reverse("django_flowdock:configure"))),
    ]


#: A source's delivery circuit, written by delivery only (see Source.circuit_state()).
CIRCUIT_FIELDS = ("failing_since", "held_until", "failures", "last_failure")
#: The circuit's states in the delivery log's colours.
CIRCUIT_COLORS = {"closed": "#2a7a2a", "held": "#b06c00", "open": "#ba2121"}
CIRCUIT_LABELS = {"closed": _("closed"), "held": _("held"), "open": _("open")}


@admin.register(Source)
class SourceAdmin(SecretAdminMixin, admin.ModelAdmin):
    form = SourceForm
    list_display = [
        "name",
        "flow_name",
        "active",
        "error",
        "scope_display",
        "circuit",
        "waiting",
        "failed",
        "last_delivery",
    ]
    list_filter = ["active", "application"]
    search_fields = ["name", "flow_name"]
    flowdock_fields = [
        "flowdock_id",
        "flow_id",
        "flow_path",
        "application",
        "created_at",
        "deactivated_at",
    ]
    delivery_fields = ["circuit", "waiting", "failed", *CIRCUIT_FIELDS]
    readonly_fields = flowdock_fields + delivery_fields
    actions = [
        "send_test_message",
        "set_error_message",
        "clear_error_message",
        "remove_from_flowdock",
    ]

    def get_fieldsets(self, request, obj=None):
        if scope_objects_fit() and not (obj and _scope_outside_models(obj)):
            scope = ["scope_object"]
        else:
            scope = ["scope_content_type", "scope_object_id"]
        fieldsets = [
            (None, {"fields": ["name", "flow_token", "flow_name", "active"]}),
            (_("What the flow receives"), {"fields": [*scope, "models", "events"]}),
            (_("In Flowdock"), {"fields": self.flowdock_fields}),
        ]
        if obj is not None:
            fieldsets.append((_("Delivery"), {"fields": self.delivery_fields}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        # A source connected through OAuth belongs to the application whose grant
        # created it (and manages it in Flowdock); one added by hand gets its
        # application here, whose secret then signs its threads' actions.
        if obj is not None and (obj.token_id or obj.flowdock_id):
            return self.readonly_fields
        return [name for name in self.readonly_fields if name != "application"]

    def get_queryset(self, request):
        # One query for the whole page, the scope objects with one more query per scope
        # type. Each figure is a per-source probe of an index (state, or source and
        # sent_at), not an aggregate over the whole message table.
        def per_source(messages: models.QuerySet[Message], value) -> Subquery:
            figure = messages.filter(source=OuterRef("pk")).order_by().values("source")
            return Subquery(figure.annotate(value=value).values("value"))

        pending = Message.objects.pending()
        return (
            super()
            .get_queryset(request)
            .prefetch_related("scope")
            .annotate(
                _last_delivery=Subquery(
                    Message.objects.filter(source=OuterRef("pk"), sent_at__isnull=False)
                    .order_by("-sent_at")
                    .values("sent_at")[:1]
                ),
                _waiting=Coalesce(per_source(pending, Count("pk")), 0),
                _oldest_waiting=per_source(pending, Min("created_at")),
                _failed=Coalesce(per_source(Message.objects.failed(), Count("pk")), 0),
            )
        )

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Delivery writes the circuit at any moment: the values loaded with this form
        # must not overwrite what it wrote since.
        obj.save(
            update_fields=[
                field.name
                for field in obj._meta.concrete_fields
                if not field.primary_key and field.name not in CIRCUIT_FIELDS
            ]
        )

    def _each(
        self, request, sources_, operation, refused: StrOrPromise, done: StrOrPromise = ""
    ) -> int:
        """Run ``operation`` on each source, reporting Flowdock's refusals (and, with
        ``done``, each success); return how many succeeded."""
        succeeded = 0
        for source in sources_:
            try:
                operation(source)
            except FlowdockError as exc:
                self.message_user(
                    request, refused % {"source": source, "error": exc}, messages.ERROR
                )
            else:
                succeeded += 1
                if done:
                    self.message_user(request, done % {"source": source})
        return succeeded

    def _update_error_messages(self, request, queryset, message: str) -> int:
        return self._each(
            request,
            queryset,
            lambda source: sources.set_error_message(source, message),
            _("%(source)s: Flowdock refused the change: %(error)s"),
        )

    @admin.action(description=_("Set an error message in Flowdock"), permissions=["change"])
    def set_error_message(self, request, queryset):
        """Asks for the text first (an intermediate page), then ``PUT /sources``."""
        form = ErrorMessageForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            done = self._update_error_messages(request, queryset, form.cleaned_data["message"])
            self.message_user(
                request,
                ngettext(
                    "Error message shown in %d flow.", "Error message shown in %d flows.", done
                )
                % done,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Set an error message in Flowdock"),
            "opts": self.opts,
            "form": form,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "django_flowdock/admin/error_message_form.html", context)

    @admin.action(description=_("Clear the error message in Flowdock"), permissions=["change"])
    def clear_error_message(self, request, queryset):
        done = self._update_error_messages(request, queryset, "")
        self.message_user(
            request,
            ngettext(
                "Error message cleared for %d source.",
                "Error messages cleared for %d sources.",
                done,
            )
            % done,
        )

    @admin.action(
        description=_("Remove from Flowdock (keep the history here)"), permissions=["change"]
    )
    def remove_from_flowdock(self, request, queryset):
        reason = _("Removed from Flowdock by %(user)s.") % {"user": request.user}
        self._each(
            request,
            queryset.filter(active=True),
            lambda source: sources.remove_source(source, reason),
            _("%(source)s was not removed: %(error)s"),
            _("%(source)s was removed from Flowdock and is now inactive."),
        )

    @admin.display(description=_("error"))
    def error(self, obj: Source):
        if not obj.error_message:
            return "—"
        return format_html('<span style="color:#ba2121">{}</span>', obj.error_message)

    @admin.display(description=_("scope"))
    def scope_display(self, obj: Source) -> StrOrPromise:
        return str(obj.scope) if obj.scope_content_type_id else _("everything")

    @admin.display(description=_("last delivery"), ordering="_last_delivery")
    def last_delivery(self, obj: Source):
        # Annotated by get_queryset().
        return getattr(obj, "_last_delivery", None) or "—"

    @admin.display(description=_("circuit"))
    def circuit(self, obj: Source):
        """The circuit's state; when open, for how long and when the next probe goes
        (the last failure on hover); when held, until when."""
        state = obj.circuit_state()
        label = format_html(
            '<strong class="flowdock-circuit" style="color:{}">{}</strong>',
            CIRCUIT_COLORS[state],
            CIRCUIT_LABELS[state],
        )
        if state == "open":
            assert obj.failing_since is not None
            next_probe = (
                _("next probe in %(time)s") % {"time": timeuntil(obj.held_until)}
                if obj.held_until and obj.held_until > timezone.now()
                else _("next probe when due")
            )
            probes = ngettext("%(count)d failed probe", "%(count)d failed probes", obj.failures) % {
                "count": obj.failures
            }
            return format_html(
                '<span title="{}">{}<br><span class="quiet">{}<br>{}</span></span>',
                obj.last_failure,
                label,
                _("for %(time)s, %(probes)s")
                % {"time": timesince(obj.failing_since), "probes": probes},
                next_probe,
            )
        if state == "held":
            assert obj.held_until is not None
            return format_html(
                '{}<br><span class="quiet">{}</span>',
                label,
                _("for %(time)s more") % {"time": timeuntil(obj.held_until)},
            )
        return label

    @admin.display(description=_("waiting"), ordering="_waiting")
    def waiting(self, obj: Source):
        """Pending messages, linked to them in the delivery log, and the oldest one's
        age. Annotated by get_queryset()."""
        count = getattr(obj, "_waiting", 0)
        if not count:
            return "0"
        oldest = getattr(obj, "_oldest_waiting", None)
        return format_html(
            '{}<br><span class="quiet">{}</span>',
            self._messages_link(obj, Message.State.PENDING, count),
            _("oldest %(age)s") % {"age": timesince(oldest)} if oldest else "",
        )

    @admin.display(description=_("failed"), ordering="_failed")
    def failed(self, obj: Source):
        count = getattr(obj, "_failed", 0)
        return self._messages_link(obj, Message.State.FAILED, count) if count else "0"

    def _messages_link(self, source: Source, state: str, count: int) -> str:
        url = reverse(f"{self.admin_site.name}:django_flowdock_message_changelist")
        query = urlencode({"source__id__exact": str(source.pk), "state": state})
        return format_html('<a href="{}?{}">{}</a>', url, query, count)

    @admin.action(description=_("Send a test message"), permissions=["change"])
    def send_test_message(self, request, queryset):
        client = FlowdockClient()
        for source in queryset.filter(active=False):
            self.message_user(
                request,
                _("%(source)s: inactive, no test message sent.") % {"source": source},
                messages.WARNING,
            )
        self._each(
            request,
            queryset.filter(active=True),
            lambda source: client_for(source, client).post_message(test_message(source)),
            _("%(source)s: Flowdock refused the test message: %(error)s"),
            _("%(source)s: test message sent."),
        )


class ErrorMessageForm(forms.Form):
    message = forms.CharField(
        label=_("Error message"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Shown prominently in the flow until cleared."),
    )


def test_message(source: Source) -> dict:
    # Flowdock shows the title as HTML: the source's name is escaped, as item titles are.
    title = inline_html(
        _("Test message for source “%(name)s”") % {"name": source.name}, TITLE_LIMIT
    )
    return {
        "flow_token": source.flow_token,
        "event": "activity",
        "author": {"name": "django-flowdock"},
        "title": "sent a test message",
        "external_thread_id": f"django-flowdock:test:{source.pk}",
        "thread": {
            "title": title,
            "body": escape(str(_("If you can read this, the source is connected."))),
            "status": {"value": "connected", "color": "green"},
        },
    }


#: Colours of the delivery log's states, from the admin's own palette.
STATE_COLORS: dict[str, str] = {
    Message.State.PENDING: "#b06c00",
    Message.State.SENT: "#2a7a2a",
    Message.State.FAILED: "#ba2121",
    Message.State.CANCELLED: "#666",
}
#: Characters of the last error shown in the list; the full text is in its tooltip.
ERROR_PREVIEW = 50


class MessageStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return Message.State.choices

    def queryset(self, request, queryset):
        return queryset.filter(state=self.value()) if self.value() else queryset


class ThreadModelFilter(admin.SimpleListFilter):
    """By the thread's model, the ``app_label.model`` before the colon of the key."""

    title = _("item")
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return model_choices()

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(thread_key__startswith=f"{self.value()}:")


class MessageEventFilter(admin.SimpleListFilter):
    """The events delivery writes, offered as they are (no ``DISTINCT`` over the log)."""

    title = _("event")
    parameter_name = "event"

    def lookups(self, request, model_admin):
        return [("activity", _("activity")), ("discussion", _("discussion"))]

    def queryset(self, request, queryset):
        return queryset.filter(event=self.value()) if self.value() else queryset


class CappedPaginator(Paginator):
    """Counts no further than ``limit`` messages, newest first: a page of a log of
    millions costs an index walk of at most ``limit`` entries, not a ``COUNT(*)`` of the
    table. Pages past the limit are not offered."""

    limit = 1_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        assert isinstance(queryset, models.QuerySet)
        return queryset.order_by("-pk")[: self.limit].count()


def split_thread_key(key: str) -> tuple[type[models.Model] | None, str]:
    """The model and pk a ``"app_label.model:pk"`` thread key names (model None when
    no installed model has that label)."""
    label, sep, pk = key.partition(":")
    if not sep:
        return None, key
    try:
        return apps.get_model(label), pk
    except (LookupError, ValueError):
        return None, pk


def thread_objects(messages) -> dict[str, models.Model]:
    """The objects behind the messages' thread keys, one query per model; keys of
    objects that are gone are missing."""
    wanted: dict[type[models.Model], set[str]] = {}
    for message in messages:
        model, pk = split_thread_key(message.thread_key)
        if model is not None:
            wanted.setdefault(model, set()).add(pk)
    found: dict[str, models.Model] = {}
    for model, pks in wanted.items():
        valid = []
        for pk in pks:
            try:
                valid.append(model._meta.pk.to_python(pk))
            except ValidationError:
                continue
        for obj in model._default_manager.filter(pk__in=valid):
            found[f"{model._meta.label_lower}:{obj.pk}"] = obj
    return found


_NOT_LOOKED_UP = object()


class DeliveryLog(ChangeList):
    """Looks up the objects of a page of messages together, before it is shown."""

    @property
    def count_capped(self) -> bool:
        """Whether the count stopped at the paginator's limit (there may be more)."""
        return self.result_count >= CappedPaginator.limit

    def get_results(self, request):
        super().get_results(request)
        self.result_list = list(self.result_list)
        found = thread_objects(self.result_list)
        for message in self.result_list:
            message.thread_object = found.get(message.thread_key)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """The delivery log: written by the machine, so read-only but for retrying."""

    change_list_template = "django_flowdock/admin/message_change_list.html"
    change_form_template = "django_flowdock/admin/message_change_form.html"
    # Six short columns: the log fits a 1280 px window beside the admin's sidebars.
    list_display = [
        "created",
        "thread_object_display",
        "source",
        "state_display",
        "last_error_display",
        "sent",
    ]
    list_display_links = ["created"]
    # Nothing here reads the whole log on each load: filters offer fixed choices (and
    # the sources, not the messages), the count stops at CappedPaginator.limit and
    # searches use the thread key's and the UUID's indexes.
    list_filter = [
        MessageStateFilter,
        "source",
        ThreadModelFilter,
        MessageEventFilter,
        "created_at",
    ]
    search_fields = ["thread_key"]
    search_help_text = _(
        "A thread key (helpdesk.ticket:42), its start (helpdesk.ticket:), an object's id "
        "(42) or a message's UUID."
    )
    list_select_related = ["source"]
    paginator = CappedPaginator
    show_full_result_count = False
    fields = (
        "uuid",
        "source",
        "thread_object_display",
        "thread_key",
        "event",
        "state_display",
        "attempts",
        "status_code",
        "last_error",
        "repairs",
        "created_at",
        "next_attempt_at",
        "sent_at",
        "change",
        "payload_display",
    )
    readonly_fields = fields
    actions = ["retry"]

    def get_changelist(self, request, **kwargs):
        return DeliveryLog

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "flowdock_summary": self.summary()}
        return super().changelist_view(request, extra_context)

    def summary(self) -> str:
        """What ``flowdock_status`` totals, above the log: messages waiting and failed,
        changes not fanned out yet, circuits not closed. Three queries."""
        now = timezone.now()
        pending, failed = Q(state=Message.State.PENDING), Q(state=Message.State.FAILED)
        outbox = Message.objects.filter(pending | failed).aggregate(
            waiting=Count("pk", filter=pending),
            oldest=Min("created_at", filter=pending),
            failed=Count("pk", filter=failed),
        )
        changes = Change.objects.filter(fanned_out=False).aggregate(
            count=Count("pk"), oldest=Min("created_at")
        )
        circuits = Source.objects.aggregate(
            open=Count("pk", filter=Q(failing_since__isnull=False)),
            held=Count("pk", filter=Q(failing_since__isnull=True, held_until__gt=now)),
        )
        log = reverse(f"{self.admin_site.name}:django_flowdock_message_changelist")
        waiting = ngettext(
            "%(count)d message waiting", "%(count)d messages waiting", outbox["waiting"]
        ) % {"count": outbox["waiting"]}
        parts: list[str] = [format_html('<a href="{}?state=pending">{}</a>', log, waiting)]
        if outbox["oldest"]:
            parts[0] = format_html(
                "{} ({})", parts[0], _("oldest %(age)s") % {"age": timesince(outbox["oldest"])}
            )
        if changes["count"]:
            parts.append(
                format_html(
                    '<a href="{}?fanned_out__exact=0">{}</a>',
                    reverse(f"{self.admin_site.name}:django_flowdock_change_changelist"),
                    ngettext(
                        "%(count)d change not fanned out yet (oldest %(age)s)",
                        "%(count)d changes not fanned out yet (oldest %(age)s)",
                        changes["count"],
                    )
                    % {"count": changes["count"], "age": timesince(changes["oldest"])},
                )
            )
        parts.append(
            format_html(
                '<a href="{}?state=failed">{}</a>',
                log,
                ngettext("%(count)d failed", "%(count)d failed", outbox["failed"])
                % {"count": outbox["failed"]},
            )
        )
        if circuits["open"] or circuits["held"]:
            parts.append(
                format_html(
                    '<a href="{}">{}</a>',
                    reverse(f"{self.admin_site.name}:django_flowdock_source_changelist"),
                    _("circuits: %(open)d open, %(held)d held") % circuits,
                )
            )
        return format_html_join("; ", "{}", ((part,) for part in parts))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(uuid=uuid.UUID(term)), False
        except ValueError:
            pass
        _label, sep, pk = term.partition(":")
        if sep and pk:
            return queryset.filter(thread_key=term), False
        if sep:
            return queryset.filter(thread_key__startswith=term), False
        # An object's pk (the key of each thread model with it, exactly), or the start
        # of a key: both probes of the thread key's index.
        keys = [f"{model._meta.label_lower}:{term}" for model in thread_models(proxies=False)]
        return queryset.filter(Q(thread_key__in=keys) | Q(thread_key__startswith=term)), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: Message):
        return _short_time(obj.created_at)

    @admin.display(description=_("sent"), ordering="sent_at")
    def sent(self, obj: Message):
        if obj.sent_at:
            return _short_time(obj.sent_at)
        if obj.state == Message.State.PENDING:
            return format_html(
                '<span class="quiet">{}<br>{}</span>', _("next:"), _short_time(obj.next_attempt_at)
            )
        return "—"

    @admin.display(description=_("object"), ordering="thread_key")
    def thread_object_display(self, obj: Message):
        return format_html(
            '{}<br><span class="quiet">{}</span>', self._thread_object(obj), obj.event
        )

    def _thread_object(self, obj: Message):
        # Set on each row by DeliveryLog; the change page shows one message.
        thread_object = getattr(obj, "thread_object", _NOT_LOOKED_UP)
        if thread_object is _NOT_LOOKED_UP:
            thread_object = thread_objects([obj]).get(obj.thread_key)
        model, pk = split_thread_key(obj.thread_key)
        if thread_object is None:
            if model is None:
                return obj.thread_key
            return format_html(
                '{} <span class="quiet" title="{}">({})</span>',
                f"{capfirst(model._meta.verbose_name)} {pk}",
                obj.thread_key,
                _("deleted"),
            )
        text = Truncator(str(thread_object)).chars(60)
        url = self._admin_url(thread_object)
        if url is None:
            return format_html('<span title="{}">{}</span>', obj.thread_key, text)
        return format_html('<a href="{}" title="{}">{}</a>', url, obj.thread_key, text)

    def _admin_url(self, thing) -> str | None:
        opts = thing._meta
        try:
            return reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                args=[quote(thing.pk)],
            )
        except NoReverseMatch:
            return None  # not in this admin site

    @admin.display(description=_("state"), ordering="state")
    def state_display(self, obj: Message):
        attempts = ngettext("%d attempt", "%d attempts", obj.attempts) % obj.attempts
        return format_html(
            '<strong class="flowdock-state" style="color:{}">{}</strong><br>'
            '<span class="quiet flowdock-attempts">{}</span>',
            STATE_COLORS.get(obj.state, "#666"),
            obj.get_state_display(),
            attempts,
        )

    @admin.display(description=_("last error"))
    def last_error_display(self, obj: Message):
        """The status and the start of the error (all of it on hover), and whether the
        payload had to be repaired (what was repaired on hover)."""
        parts = []
        if obj.last_error or obj.status_code:
            text = Truncator(obj.last_error).chars(ERROR_PREVIEW)
            if obj.status_code:
                text = f"{obj.status_code} {text}".strip()
            parts.append(format_html('<span title="{}">{}</span>', obj.last_error, text))
        if obj.repairs:
            parts.append(
                format_html(
                    '<span class="flowdock-repaired" title="{}">{}</span>',
                    obj.repairs,
                    _("payload repaired"),
                )
            )
        return format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts)) or "—"

    @admin.display(description=_("payload"))
    def payload_display(self, obj: Message):
        return format_html(
            '<pre class="flowdock-payload">{}</pre>',
            json.dumps(obj.payload, indent=2, ensure_ascii=False),
        )

    def has_retry_permission(self, request) -> bool:
        # Rows are read-only in the admin; retrying needs the model's change permission.
        return request.user.has_perm("django_flowdock.change_message")

    @admin.action(description=_("Retry selected messages"), permissions=["retry"])
    def retry(self, request, queryset):
        from .delivery import get_backend

        again = queryset.retry()
        transaction.on_commit(
            get_backend().dispatch, using=router.db_for_write(Message), robust=True
        )
        count = len(again)
        self.message_user(
            request,
            ngettext("%d message queued again.", "%d messages queued again.", count) % count,
        )


def _short_time(value) -> str:
    """The date above the time: a narrow column."""
    value = timezone.localtime(value)
    return format_html(
        "{}<br>{}",
        formats.date_format(value, "SHORT_DATE_FORMAT"),
        formats.time_format(value, "TIME_FORMAT"),
    )


class ChangeModelFilter(admin.SimpleListFilter):
    """By the changed object's model: the thread and comment models, offered as they
    are (no ``DISTINCT`` over the changes)."""

    title = _("model")
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return [
            (model._meta.label_lower, capfirst(model._meta.verbose_name_plural))
            for model in apps.get_models()
            if issubclass(model, FlowdockThread | FlowdockComment) and not model._meta.proxy
        ]

    def queryset(self, request, queryset):
        return queryset.filter(model=self.value()) if self.value() else queryset


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    """Captured changes, written at save time and fanned out by the delivery engine."""

    list_display = ["created_at", "event", "model", "object_pk", "fanned_out", "error_display"]
    list_filter = ["fanned_out", "event", ChangeModelFilter, "created_at"]
    search_fields = ["model", "object_pk", "error"]
    fields = (
        "created_at",
        "event",
        "model",
        "object_pk",
        "author_pk",
        "transaction",
        "base_url",
        "fanned_out",
        "error",
        "values",
        "described",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("error"))
    def error_display(self, obj: Change):
        if not obj.error:
            return "—"
        return format_html(
            '<span style="color:#ba2121" title="{}">{}</span>',
            obj.error,
            Truncator(obj.error).chars(ERROR_PREVIEW),
        )


@admin.register(FlowdockUser)
class FlowdockUserAdmin(admin.ModelAdmin):
    list_display = ["flowdock_user_id", "name", "user", "linked_at"]
    list_select_related = ["user"]
    search_fields = ["flowdock_user_id", "name", "user__username"]
    raw_id_fields = ["user"]


class FlowdockThreadAdminMixin(admin.ModelAdmin):
    """For the admin of a ``FlowdockThread`` model: a Flowdock panel on each object's
    change page, under its fields, with the object's thread key, its latest messages
    per source (state, attempts, last error, linked to the delivery log) and a
    **Resend to Flowdock** button that queues the thread's current state, as
    ``flowdock_resync`` does. Put it before ``admin.ModelAdmin`` in the bases::

        @admin.register(Ticket)
        class TicketAdmin(FlowdockThreadAdminMixin, admin.ModelAdmin): ...
    """

    #: Messages shown on the panel, newest first; the delivery log lists them all.
    flowdock_panel_limit = 20

    def get_urls(self):
        opts = self.opts
        return [
            path(
                "<path:object_id>/flowdock-resend/",
                self.admin_site.admin_view(self.flowdock_resend_view),
                name=f"{opts.app_label}_{opts.model_name}_flowdock_resend",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        response = super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )
        if add or not isinstance(obj, FlowdockThread):
            return response
        assert isinstance(response, TemplateResponse)  # not rendered yet: still swappable
        # The page this admin would show, with the panel added under its fields.
        base = response.template_name
        context["flowdock_base_template"] = (
            select_template([base] if isinstance(base, str) else base)
            if isinstance(base, str | list | tuple)
            else base
        )
        context["flowdock_panel"] = self.flowdock_panel_context(request, obj)
        response.template_name = "django_flowdock/admin/thread_change_form.html"
        return response

    def flowdock_panel_context(self, request, obj: FlowdockThread) -> dict[str, Any]:
        """What the panel shows: the thread key, its latest messages grouped by source,
        the links to the delivery log, and whether the user may resend."""
        key = obj.get_flowdock_thread_id()
        latest = list(
            Message.objects.filter(thread_key=key)
            .select_related("source")
            .order_by("-pk")[: self.flowdock_panel_limit + 1]
        )
        shown = latest[: self.flowdock_panel_limit]
        site = self.admin_site.name
        log = reverse(f"{site}:django_flowdock_message_changelist")
        by_source: dict[int, dict[str, Any]] = {}
        for message in shown:
            query = urlencode({"q": key, "source__id__exact": str(message.source_id)})
            group = by_source.setdefault(
                message.source_id,
                {"source": message.source, "log_url": f"{log}?{query}", "messages": []},
            )
            group["messages"].append(
                {
                    "message": message,
                    "url": reverse(f"{site}:django_flowdock_message_change", args=[message.pk]),
                    "color": STATE_COLORS.get(message.state, "#666"),
                }
            )
        opts = self.opts
        return {
            "thread_key": key,
            "sources": list(by_source.values()),
            "more": len(latest) > len(shown),
            "log_url": f"{log}?{urlencode({'q': key})}",
            "resend_url": reverse(
                f"{site}:{opts.app_label}_{opts.model_name}_flowdock_resend",
                args=[quote(obj.pk)],
            ),
            "can_resend": self.has_change_permission(request, obj),
        }

    def flowdock_resend_view(self, request, object_id: str):
        """Queue the thread's current state for every source that receives it (POST,
        with the change permission on the object)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        if not isinstance(obj, FlowdockThread) or not self.has_change_permission(request, obj):
            raise PermissionDenied
        queue_current_state(type(obj), [obj])
        self.message_user(
            request,
            _("The current state of “%(object)s” is queued for Flowdock.") % {"object": obj},
            messages.SUCCESS,
        )
        opts = self.opts
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                args=[quote(obj.pk)],
            )
        )
