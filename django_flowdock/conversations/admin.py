"""The listener's records in the admin, read-only (the listener writes them): replies
that failed, with their traceback and a "retry now" action, beside the delivery log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_flowdock.conversations.models import FlowLease, ReceivedMessage
from django_flowdock.conversations.replies import retry

DETAIL_FIELDS = (
    "flow_id",
    "message_id",
    "state",
    "attempts",
    "next_attempt_at",
    "thread_link",
    "comment_model",
    "comment_pk",
    "flowdock_user_id",
    "received_at",
    "traceback",
    "data",
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReceivedMessage)
class ReceivedMessageAdmin(ReadOnlyAdmin):
    list_display = [
        "message_id",
        "flow_id",
        "state",
        "attempts",
        "comment",
        "error",
        "next_attempt_at",
        "received_at",
    ]
    list_filter = ["state", "flow_id"]
    search_fields = ["=message_id", "comment_pk", "last_error"]
    ordering = ["-received_at"]
    actions = ["retry_now"]
    fields = DETAIL_FIELDS
    readonly_fields = DETAIL_FIELDS

    @admin.display(description=_("comment"))
    def comment(self, obj: ReceivedMessage) -> str:
        return f"{obj.comment_model}:{obj.comment_pk}" if obj.comment_pk else "—"

    @admin.display(description=_("error"))
    def error(self, obj: ReceivedMessage) -> str:
        """The traceback's last line: the exception and its message."""
        lines = obj.last_error.strip().splitlines()
        return lines[-1] if lines else ""

    @admin.display(description=_("traceback"))
    def traceback(self, obj: ReceivedMessage) -> str:
        return format_html("<pre>{}</pre>", obj.last_error) if obj.last_error else "—"

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """The model's "change" permission: rows stay read-only, retrying runs the hook."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description=_("Retry the selected failed replies now"), permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[ReceivedMessage]) -> None:
        outcomes = [
            retry(pk)
            for pk in queryset.filter(state=ReceivedMessage.State.FAILED).values_list(
                "pk", flat=True
            )
        ]
        applied = sum(outcome in ("comment", "ignored") for outcome in outcomes)
        failed = outcomes.count("failed")
        self.message_user(
            request,
            ngettext("%d reply applied.", "%d replies applied.", applied) % applied,
            messages.SUCCESS,
        )
        if failed:
            self.message_user(
                request,
                ngettext(
                    "%d reply failed again; see its traceback.",
                    "%d replies failed again; see their tracebacks.",
                    failed,
                )
                % failed,
                messages.ERROR,
            )


@admin.register(FlowLease)
class FlowLeaseAdmin(ReadOnlyAdmin):
    """Which listener (host:process) reads which flow, and until when without renewal."""

    list_display = ["flow_id", "holder", "held_until"]
    ordering = ["flow_id"]
