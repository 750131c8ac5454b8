"""Admin screens: OAuth applications, sources, the delivery log, Flowdock users."""

from __future__ import annotations

import json

import django
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import Max
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_post_parameters

from . import oauth, sources, views
from .client import FlowdockClient, client_for
from .exceptions import FlowdockError
from .forms import ConnectForm
from .models import FlowdockUser, Message, OAuthApplication, Source


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

    def clean(self):
        cleaned = super().clean()
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
        # Django 5 warns unless the scheme is chosen; 4.2 has no such argument.
        **({"assume_scheme": "https"} if django.VERSION >= (5, 0) else {}),
    )

    class Meta:
        model = OAuthApplication
        fields = ["name", "client_id", "client_secret", "api_url", "offline_access"]


class SourceForm(SecretFieldsForm):
    secret_fields = ("flow_token",)

    class Meta:
        model = Source
        fields = [
            "name",
            "flow_token",
            "flow_name",
            "active",
            "scope_content_type",
            "scope_object_id",
            "settings",
        ]


class SecretAdminMixin:
    """Keeps secrets out of error reports for the add/change forms."""

    @method_decorator(sensitive_post_parameters("client_secret", "flow_token"))
    def changeform_view(self, *args, **kwargs):
        return super().changeform_view(*args, **kwargs)


@admin.register(OAuthApplication)
class OAuthApplicationAdmin(SecretAdminMixin, admin.ModelAdmin):
    form = OAuthApplicationForm
    list_display = ["name", "client_id", "api_url", "source_count", "created_at"]
    search_fields = ["name", "client_id"]
    change_form_template = "django_flowdock/admin/oauthapplication_change_form.html"

    @admin.display(description=_("sources"))
    def source_count(self, obj: OAuthApplication) -> int:
        return obj.sources.count()

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

    def render_change_form(self, request, context, add=False, change=False, **kwargs):
        obj = kwargs.get("obj")
        if obj is not None and obj.pk:
            context["flowdock_uris"] = application_uris(request, obj)
            context["can_connect"] = request.user.has_perm("django_flowdock.add_source")
        return super().render_change_form(request, context, add=add, change=change, **kwargs)

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


def application_uris(request, application: OAuthApplication) -> list[tuple[str, str]]:
    """The URIs to paste into Flowdock's developer application form."""
    setup = reverse("django_flowdock:setup-application", args=[application.pk])
    return [
        (_("Callback URI"), oauth.callback_url(request)),
        (_("Setup URI"), oauth.absolute_url(request, setup)),
        (_("Configuration URI"), oauth.absolute_url(request, reverse("django_flowdock:configure"))),
    ]


@admin.register(Source)
class SourceAdmin(SecretAdminMixin, admin.ModelAdmin):
    form = SourceForm
    list_display = ["name", "flow_name", "active", "error", "scope_display", "last_delivery"]
    list_filter = ["active", "application"]
    search_fields = ["name", "flow_name"]
    readonly_fields = [
        "flowdock_id",
        "flow_id",
        "flow_path",
        "application",
        "created_at",
        "deactivated_at",
    ]
    actions = [
        "send_test_message",
        "set_error_message",
        "clear_error_message",
        "remove_from_flowdock",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_last_delivery=Max("messages__sent_at"))

    def _each(self, request, sources_, operation, refused: str, done: str = "") -> int:
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
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
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
    def scope_display(self, obj: Source) -> str:
        return str(obj.scope) if obj.scope_content_type_id else _("everything")

    @admin.display(description=_("last delivery"), ordering="_last_delivery")
    def last_delivery(self, obj: Source):
        return obj._last_delivery or "—"

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
    return {
        "flow_token": source.flow_token,
        "event": "activity",
        "author": {"name": "django-flowdock"},
        "title": "sent a test message",
        "external_thread_id": f"django-flowdock:test:{source.pk}",
        "thread": {
            "title": f"Test message for source “{source.name}”",
            "body": "If you can read this, the source is connected.",
            "status": {"value": "connected", "color": "green"},
        },
    }


class MessageStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return Message.State.choices

    def queryset(self, request, queryset):
        return queryset.filter(state=self.value()) if self.value() else queryset


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """The delivery log: written by the machine, so read-only but for retrying."""

    list_display = [
        "created_at",
        "event",
        "thread_key",
        "source",
        "state",
        "attempts",
        "status_code",
        "sent_at",
    ]
    list_filter = [MessageStateFilter, "event", "source"]
    search_fields = ["thread_key", "uuid", "last_error"]
    list_select_related = ["source"]
    date_hierarchy = "created_at"
    fields = [
        "uuid",
        "source",
        "thread_key",
        "event",
        "state",
        "attempts",
        "status_code",
        "last_error",
        "repairs",
        "created_at",
        "next_attempt_at",
        "sent_at",
        "payload_display",
    ]
    readonly_fields = fields
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("payload"))
    def payload_display(self, obj: Message):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))

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


@admin.register(FlowdockUser)
class FlowdockUserAdmin(admin.ModelAdmin):
    list_display = ["flowdock_user_id", "name", "user", "linked_at"]
    search_fields = ["flowdock_user_id", "name", "user__username"]
    raw_id_fields = ["user"]
