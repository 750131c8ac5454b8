"""What the listener needs to remember: which Flowdock thread shows which object, how
far each flow was read, and which chat messages already became comments."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_flowdock.models import Source


class ThreadLink(models.Model):
    """Flowdock's ``thread_id`` of one item (``thread_key``) in one source's flow."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="thread_links")
    thread_key = models.CharField(_("thread"), max_length=255)
    flowdock_thread_id = models.CharField(_("Flowdock thread ID"), max_length=100)
    #: The object the thread shows (``thread_key`` may be any custom string).
    model = models.CharField(_("model"), max_length=200, help_text=_('"app_label.model"'))
    object_pk = models.CharField(_("object ID"), max_length=64)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("thread link")
        verbose_name_plural = _("thread links")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "thread_key"], name="flowdock_thread_link_unique"
            )
        ]
        indexes = [models.Index(fields=["flowdock_thread_id"])]

    def __str__(self) -> str:
        return f"{self.thread_key} = {self.flowdock_thread_id}"


class FlowCursor(models.Model):
    """The id of the last message of a flow that the listener applied (message ids
    grow and are unique within a flow); streams resume after it."""

    flow_id = models.CharField(_("flow ID"), max_length=100, unique=True)
    last_message_id = models.BigIntegerField(_("last message ID"), default=0)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("flow cursor")
        verbose_name_plural = _("flow cursors")

    def __str__(self) -> str:
        return f"{self.flow_id} @ {self.last_message_id}"


class ReceivedMessageQuerySet(models.QuerySet["ReceivedMessage"]):
    def failed(self) -> ReceivedMessageQuerySet:
        return self.filter(state=ReceivedMessage.State.FAILED)

    def due(self) -> ReceivedMessageQuerySet:
        """Failed replies whose next automatic attempt is due."""
        return self.failed().filter(next_attempt_at__lte=timezone.now())


class ReceivedMessage(models.Model):
    """A chat message read in a known thread, written in the comment's transaction: the
    unique (flow, message) pair makes applying one twice impossible, whichever
    listener process sees it. A reply whose hook raised is kept ``failed``, with its
    traceback and the message as Flowdock sent it, and tried again with backoff."""

    class State(models.TextChoices):
        APPLIED = "applied", _("applied")
        FAILED = "failed", _("failed")
        #: The comment model's ``can_comment_from_flowdock`` said no: kept, not retried.
        REFUSED = "refused", _("refused")

    flow_id = models.CharField(_("flow ID"), max_length=100)
    message_id = models.BigIntegerField(_("message ID"))
    thread_link = models.ForeignKey(
        ThreadLink, on_delete=models.SET_NULL, null=True, related_name="received"
    )
    comment_model = models.CharField(_("comment model"), max_length=200, blank=True)
    comment_pk = models.CharField(_("comment ID"), max_length=64, blank=True)
    flowdock_user_id = models.CharField(_("Flowdock user ID"), max_length=100, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.APPLIED
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=1)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    #: The message as Flowdock sent it, kept while it has not been applied.
    data = models.JSONField(_("message"), default=dict, blank=True)

    objects = ReceivedMessageQuerySet.as_manager()

    class Meta:
        verbose_name = _("received message")
        verbose_name_plural = _("received messages")
        constraints = [
            models.UniqueConstraint(
                fields=["flow_id", "message_id"], name="flowdock_received_message_unique"
            )
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.flow_id}#{self.message_id} → {self.comment_model}:{self.comment_pk}"


class FlowLease(models.Model):
    """Which listener reads a flow: one reader per flow across hosts. The holder renews
    it while it reads; a lease not renewed for ``CLAIM_TIMEOUT`` seconds (its holder
    died) is taken over. Times are on the database's clock, as delivery's claims."""

    flow_id = models.CharField(_("flow ID"), max_length=100, unique=True)
    holder = models.CharField(_("holder"), max_length=200)
    held_until = models.DateTimeField(_("held until"))

    class Meta:
        verbose_name = _("flow lease")
        verbose_name_plural = _("flow leases")

    def __str__(self) -> str:
        return f"{self.flow_id} by {self.holder}"
