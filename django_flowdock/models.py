"""Connections to Flowdock (applications, sources, tokens), the captured changes and
the delivery outbox."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import Min, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_flowdock.crypto import EncryptedTextField


class OAuthApplication(models.Model):
    """A developer application registered in Flowdock."""

    name = models.CharField(_("name"), max_length=100)
    client_id = models.CharField(_("client ID"), max_length=200, unique=True)
    client_secret = EncryptedTextField(
        _("client secret"), help_text=_("Also signs the FLOWDOCK-TOKEN of UpdateActions.")
    )
    api_url = models.URLField(
        _("API URL"),
        blank=True,
        help_text=_('Leave empty to use FLOWDOCK["API_URL"].'),
    )
    offline_access = models.BooleanField(
        _("keep refresh tokens"),
        default=False,
        help_text=_("Ask for the offline_access scope so tokens can be refreshed."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("OAuth application")
        verbose_name_plural = _("OAuth applications")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_api_url(self) -> str:
        from django_flowdock.conf import flowdock_settings

        return (self.api_url or flowdock_settings.API_URL).rstrip("/")


class OAuthToken(models.Model):
    """A Flowdock user's OAuth grant to an application; used to manage its sources."""

    application = models.ForeignKey(
        OAuthApplication, on_delete=models.CASCADE, related_name="tokens"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="flowdock_tokens",
        help_text=_("The local user who granted access."),
    )
    flowdock_user_id = models.CharField(_("Flowdock user ID"), max_length=100, blank=True)
    access_token = EncryptedTextField(_("access token"))
    refresh_token = EncryptedTextField(_("refresh token"), blank=True)
    scope = models.CharField(_("scope"), max_length=200, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("OAuth token")
        verbose_name_plural = _("OAuth tokens")

    def __str__(self) -> str:
        return f"{self.application} / {self.flowdock_user_id or self.user or self.pk}"


class Source(models.Model):
    """One connection to one flow. Its flow token authenticates every message posted."""

    name = models.CharField(
        _("name"), max_length=200, help_text=_("The external entity: a project, a queue.")
    )
    flow_token = EncryptedTextField(
        _("flow token"),
        help_text=_("Shown once by Flowdock when the source is created."),
    )
    active = models.BooleanField(_("active"), default=True)
    error_message = models.TextField(_("error message"), blank=True)
    application = models.ForeignKey(
        OAuthApplication,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sources",
    )
    token = models.ForeignKey(
        OAuthToken,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sources",
        help_text=_("The OAuth grant that created the source, used to manage it."),
    )
    flowdock_id = models.CharField(_("Flowdock source ID"), max_length=100, blank=True)
    flow_id = models.CharField(_("flow ID"), max_length=100, blank=True)
    flow_name = models.CharField(_("flow"), max_length=200, blank=True)
    flow_path = models.CharField(
        _("flow path"), max_length=200, blank=True, help_text=_('"organization/flow"')
    )
    scope_content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, null=True, blank=True, verbose_name=_("scope type")
    )
    scope_object_id = models.CharField(_("scope ID"), max_length=64, blank=True)
    scope = GenericForeignKey("scope_content_type", "scope_object_id")
    settings = models.JSONField(
        _("settings"),
        default=dict,
        blank=True,
        help_text=_(
            'Which items and events this source receives: {"models": [...], "events": [...]}.'
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    deactivated_at = models.DateTimeField(_("deactivated"), null=True, blank=True)
    # The circuit, written by delivery only. While Flowdock cannot be reached (or
    # answers 5xx, 408 or 429), one probe at a time tests it, no sooner than
    # ``held_until``; the messages behind wait without spending anything.
    held_until = models.DateTimeField(_("held until"), null=True, blank=True)
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    failures = models.PositiveIntegerField(_("failed probes"), default=0)
    last_failure = models.TextField(_("last failure"), blank=True)

    class Meta:
        verbose_name = _("source")
        verbose_name_plural = _("sources")
        ordering = ["name"]
        indexes = [models.Index(fields=["scope_content_type", "scope_object_id"])]

    def __str__(self) -> str:
        return f"{self.name} → {self.flow_name}" if self.flow_name else self.name

    def get_api_url(self) -> str:
        """Where this source's flow lives: its OAuth application's own API URL when it
        has one, else ``FLOWDOCK["API_URL"]``."""
        if self.application is not None:
            return self.application.get_api_url()
        from django_flowdock.conf import flowdock_settings

        return flowdock_settings.API_URL.rstrip("/")

    def accepts(self, model_label: str, event: str) -> bool:
        """Whether the source's settings let through ``event`` about ``model_label``."""
        models_allowed = self.settings.get("models")
        events_allowed = self.settings.get("events")
        return (not models_allowed or model_label in models_allowed) and (
            not events_allowed or event in events_allowed
        )

    def deactivate(self, reason: str) -> int:
        """Stop posting to this source and close its pending messages with ``reason``;
        return how many were closed."""
        self.active = False
        self.error_message = reason
        self.deactivated_at = timezone.now()
        self.save(update_fields=["active", "error_message", "deactivated_at"])
        return self.messages.filter(state=Message.State.PENDING).update(
            state=Message.State.CANCELLED,
            last_error=reason,
            claimed_until=None,
            claim_token="",
            head=False,
        )

    def circuit_state(self, now: datetime | None = None) -> str:
        """The state of this source's delivery circuit, as of ``now``:

        - ``"open"`` while a run of transient failures lasts (``failing_since`` is
          set: Flowdock unreachable, or answering 5xx, 408 or 429): its messages wait
          while one probe at a time, no sooner than ``held_until``, tests Flowdock;
        - ``"held"`` when healthy but asked to wait (a 429's ``Retry-After``):
          ``held_until`` is still ahead;
        - ``"closed"`` otherwise: messages go out as they come.
        """
        if self.failing_since is not None:
            return "open"
        if self.held_until is not None and self.held_until > (now or timezone.now()):
            return "held"
        return "closed"


class Change(models.Model):
    """What one save, delete, M2M change or comment did, captured in its transaction.

    The save path writes only this small row (one ``INSERT``); the delivery engine
    later fans it out to the receiving sources as :class:`Message` rows and renders
    it from the object as it is then. ``values`` is JSON text: ``{"old": {...},
    "new": {...}}`` for updates (the attributes that changed), ``{"last": {...}}`` for
    deletions (every concrete field and the related pks of every many-to-many field,
    to render a thread whose object is gone), and for comments the comment's fields and
    its thread's model and pk (to render a discussion whose comment or thread is gone).
    """

    class Event(models.TextChoices):
        CREATED = "created", _("created")
        UPDATED = "updated", _("updated")
        DELETED = "deleted", _("deleted")
        COMMENTED = "commented", _("commented")

    model = models.CharField(_("model"), max_length=200, help_text=_('"app_label.model"'))
    # Wide enough for any primary key a model may declare (a CharField's 255).
    object_pk = models.CharField(_("object ID"), max_length=255)
    event = models.CharField(_("event"), max_length=10, choices=Event.choices)
    values = models.TextField(_("values"), blank=True)
    author_pk = models.CharField(_("author ID"), max_length=255, blank=True)
    #: Same value for the changes of one transaction, which are coalesced per thread.
    transaction = models.CharField(_("transaction"), max_length=32, blank=True)
    #: The request's scheme and host when no SITE_URL is set, for absolute URLs.
    base_url = models.TextField(_("base URL"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    fanned_out = models.BooleanField(_("fanned out"), default=False)
    #: Filled at fan-out: JSON of what the change shows, [label, old, new, summary_only].
    described = models.TextField(_("described"), blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("change")
        verbose_name_plural = _("changes")
        ordering = ["-pk"]
        indexes = [
            models.Index(fields=["fanned_out", "id"]),
            # A deleted object's last values are looked up by it at delivery.
            models.Index(fields=["model", "object_pk", "event"]),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.model}:{self.object_pk}"


class MessageQuerySet(models.QuerySet["Message"]):
    def pending(self) -> MessageQuerySet:
        return self.filter(state=Message.State.PENDING)

    def failed(self) -> MessageQuerySet:
        return self.filter(state=Message.State.FAILED)

    def retry(self) -> list[Message]:
        """Queue failed messages, and pending ones waiting for their backoff, again;
        return them. Never one a worker holds right now, which could then go out twice
        at once. Messages are rendered when posted, so a late retry shows the thread as
        it is then and never turns it back."""
        from django_flowdock.delivery.leases import Clock

        # Leases are on the database's clock: this host's may run ahead of it.
        now = Clock.of(router.db_for_write(Message)).now()
        retryable = Q(state=Message.State.FAILED) | Q(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), state=Message.State.PENDING
        )
        messages: list[Message] = list(self.filter(retryable, source__active=True))
        retried = Message.objects.filter(retryable, pk__in=[m.pk for m in messages])
        retried.update(
            state=Message.State.PENDING, attempts=0, next_attempt_at=now, claimed_until=None
        )
        # A failed message pending again goes before the later ones of its line.
        retried.refresh_heads()
        return messages

    def due(self, now: datetime | None = None) -> MessageQuerySet:
        """Pending, never tried or past their retry time, not claimed by a live worker,
        for a source that is still active (unticking "active" stops its queued
        messages) and not held by its circuit."""
        now = now or timezone.now()
        return self.pending().filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            # A first attempt waits for no clock: a host whose clock runs ahead must not
            # delay the messages it queues.
            Q(attempts=0) | Q(next_attempt_at__lte=now),
            Q(source__held_until__isnull=True) | Q(source__held_until__lte=now),
            source__active=True,
        )

    def first_in_line(self) -> MessageQuerySet:
        """Pending messages with no earlier pending message of their thread and source:
        the only ones that may go out next. Read from the maintained ``head`` marker,
        so a claim costs the same for any backlog (see :meth:`refresh_heads`)."""
        # "head IN (true)", not Django's bare "head" for head=True: SQLite uses the
        # (state, head, id) index only for a comparison.
        return self.pending().filter(head__in=[True], source__active=True)

    def refresh_heads(self) -> int:
        """Mark the first pending message of each line (source and thread) that this
        queryset's messages belong to as its head, and no other; return the number of
        lines whose marker this moved. A line whose head a worker holds is left as it
        is: moving the mark would let a second message of the thread go out while that
        one is in flight; its outcome hands the head to the first pending message (a
        retry outcome included), and a lease that runs out leaves it to the delivery
        loops' check. For the rare writes that make a message pending, or end several at
        once (retry, expiry, the delivery loops' check); fan-out and each outcome keep
        the marker themselves."""
        from django_flowdock.delivery.fanout import take_write_lock
        from django_flowdock.delivery.leases import Clock

        using = router.db_for_write(Message)
        lines = set(self.values_list("source_id", "thread_key").order_by().distinct())
        if not lines:
            return 0
        clock = Clock.of(using)
        moved = 0
        for source_id, thread_key in lines:
            line = Message.objects.using(using).filter(
                source_id=source_id, thread_key=thread_key, state=Message.State.PENDING
            )
            # The line's pending rows held: an outcome written meanwhile (which hands
            # the head on) waits for this, or this reads what it wrote.
            with transaction.atomic(using=using):
                if connections[using].features.has_select_for_update:
                    locked = line.select_for_update()
                else:
                    take_write_lock(using, Message)
                    locked = line
                pending = list(locked.values_list("pk", "head", "claimed_until"))
                now = clock.now()
                if not pending or any(h and c and c > now for _pk, h, c in pending):
                    continue
                first = min(pk for pk, _head, _claimed in pending)
                others = line.filter(head=True).exclude(pk=first).update(head=False)
                moved += bool(others + line.filter(pk=first, head=False).update(head=True))
        return moved

    def deliverable(self, now: datetime | None = None) -> MessageQuerySet:
        """Due messages that are first in line for their thread and source: an earlier
        pending message (waiting for a retry, or in flight) holds back later ones."""
        # Walks pending rows in id order and stops at the batch size.
        return self.first_in_line().due(now).order_by("pk")

    def seconds_until_due(self) -> float | None:
        """Seconds until :meth:`next_due`, both read on the database's clock (the one
        leases and holds are written on); ``None`` when nothing is pending."""
        from django_flowdock.delivery.leases import Clock

        clock = Clock.of(self.db)
        due = self.next_due(clock.now())
        return None if due is None else (due - clock.now()).total_seconds()

    def next_due(self, now: datetime | None = None) -> datetime | None:
        """When a message first in line can next be attempted: its retry time, the
        next probe of its held source, or the end of the lease of one a worker holds.
        ``None`` when nothing is pending."""
        now = now or timezone.now()
        heads = self.first_in_line()
        free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
        # A head is due when both its own retry time and its source's hold have passed.
        due_at = Greatest("next_attempt_at", Coalesce("source__held_until", "next_attempt_at"))
        times = [
            heads.filter(free).aggregate(at=Min(due_at))["at"],
            heads.exclude(free).aggregate(at=Min("claimed_until"))["at"],
        ]
        return min((t for t in times if t is not None), default=None)


class Message(models.Model):
    """One message to one source: the transactional outbox and the delivery log."""

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    uuid = models.UUIDField(_("UUID"), default=uuid.uuid4, unique=True, editable=False)
    # No index of its own: the (source, thread_key, state, id) index leads with it, and
    # each index is one more write for every outcome.
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    change = models.ForeignKey(
        Change, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    thread_key = models.CharField(_("thread"), max_length=255)
    event = models.CharField(_("event"), max_length=20)
    #: What was (or will be) posted, rendered from the change when it is attempted.
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    #: What had to be cut, dropped or defaulted to make the payload valid.
    repairs = models.TextField(_("repairs"), blank=True)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    status_code = models.PositiveSmallIntegerField(_("last status"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    claimed_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    #: Set with each claim; an outcome is only written while it still matches, so a
    #: worker whose lease ran out cannot overwrite what a newer claim recorded.
    claim_token = models.CharField(_("claim token"), max_length=32, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    #: First pending message of its line (source and thread): the only one that may go
    #: out next. Kept by fan-out (a line's first new message) and by each outcome (the
    #: next in line takes over), so claims walk heads only, whatever the backlog.
    head = models.BooleanField(_("first in line"), default=False, editable=False)

    objects = MessageQuerySet.as_manager()

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-pk"]
        indexes = [
            models.Index(fields=["state", "id"]),
            models.Index(fields=["source", "thread_key", "state", "id"]),
            # Claims walk the heads in id order.
            models.Index(fields=["state", "head", "id"]),
            # The admin's thread panel and delivery log search by thread key and by its
            # prefix; the pattern opclass lets PostgreSQL use it for LIKE 'prefix%'
            # (other databases ignore opclasses).
            models.Index(
                fields=["thread_key"],
                name="django_flowdock_thread_key",
                opclasses=["varchar_pattern_ops"],
            ),
            # The delivery log's "created" filter.
            models.Index(fields=["created_at"]),
            # The admin's sources list: each source's last delivery.
            models.Index(fields=["source", "sent_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.thread_key} → {self.source_id} ({self.state})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A message written by hand (fan-out writes its own in bulk) is its line's head
        # when nothing of the line is pending yet.
        if self._state.adding and self.state == Message.State.PENDING and not self.head:
            self.head = (
                not Message.objects.pending()
                .filter(source_id=self.source_id, thread_key=self.thread_key)
                .exists()
            )
        super().save(*args, **kwargs)

    def api_payload(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON posted to ``/messages``: the rendered payload plus token and uuid."""
        payload = self.payload if payload is None else payload
        return {**payload, "flow_token": self.source.flow_token, "uuid": str(self.uuid)}


class FlowdockUser(models.Model):
    """Links a Flowdock user to a local user, so actions from chat run as that user."""

    flowdock_user_id = models.CharField(_("Flowdock user ID"), max_length=100, unique=True)
    name = models.CharField(_("Flowdock name"), max_length=200, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flowdock_users"
    )
    linked_at = models.DateTimeField(_("linked"), auto_now_add=True)

    class Meta:
        verbose_name = _("Flowdock user")
        verbose_name_plural = _("Flowdock users")

    def __str__(self) -> str:
        return f"{self.name or self.flowdock_user_id} → {self.user}"


class UsedTokenManager(models.Manager):
    #: Rows outlive their token a little, so a process whose clock runs behind still
    #: finds a token another process used.
    CLOCK_SKEW = timedelta(seconds=60)

    def first_use(self, kind: str, value: str, expires_at: datetime) -> bool:
        """Record ``value`` as used; False if any process recorded it before.

        The unique digest makes two processes racing on one token disagree in the
        database, not in a per-process cache. Expired rows are deleted on the way.
        """
        digest = hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()
        using = router.db_for_write(self.model)
        self.using(using).filter(expires_at__lt=timezone.now() - self.CLOCK_SKEW).delete()
        try:
            with transaction.atomic(using=using):
                self.using(using).create(digest=digest, expires_at=expires_at)
        except IntegrityError:
            return False
        return True


class UsedToken(models.Model):
    """A single-use credential (a FLOWDOCK-TOKEN, an identity claim) already accepted,
    kept until it expires so that a replay is refused by every process."""

    digest = models.CharField(_("digest"), max_length=64, unique=True)
    expires_at = models.DateTimeField(_("expires"), db_index=True)

    objects = UsedTokenManager()

    class Meta:
        verbose_name = _("used token")
        verbose_name_plural = _("used tokens")

    def __str__(self) -> str:
        return self.digest
