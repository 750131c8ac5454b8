"""What a Flowdock holds, cut down to what integrations touch.

The sandbox runs with settings of its own, so the settings mypy's Django plugin loads
do not install this app and the plugin adds nothing to these models: each declares
its default manager, and the ``<fk>_id`` columns and reverse accessors the sandbox
reads, for the type checker only.
"""

import secrets
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager


def opaque_id() -> str:
    """An id shaped like Flowdock's thread ids: URL-safe and meaningless."""
    return secrets.token_urlsafe(20)


def flow_id() -> str:
    return str(uuid.uuid4())


def hex_token() -> str:
    return secrets.token_hex(16)


def long_token() -> str:
    return secrets.token_hex(32)


class Organization(models.Model):
    name = models.CharField(max_length=100)
    parameterized_name = models.SlugField(unique=True)

    objects: ClassVar[models.Manager["Organization"]]

    def __str__(self) -> str:
        return self.name


class User(models.Model):
    name = models.CharField(max_length=100)
    nick = models.CharField(max_length=100)
    email = models.EmailField()
    avatar = models.URLField(blank=True)
    api_token = models.CharField(max_length=64, unique=True, default=hex_token)
    # What the user last set with a ``status`` message.
    status = models.CharField(max_length=8096, blank=True)

    # DRF's permission classes ask every authenticated principal this.
    is_authenticated = True

    objects: ClassVar[models.Manager["User"]]

    def __str__(self) -> str:
        return self.name


class Flow(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=flow_id)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=100)
    parameterized_name = models.SlugField()

    objects: ClassVar[models.Manager["Flow"]]
    sources: "RelatedManager[Source]"
    threads: "RelatedManager[Thread]"
    messages: "RelatedManager[Message]"

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "parameterized_name"], name="unique_flow_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization.parameterized_name}/{self.parameterized_name}"

    @property
    def path(self) -> str:
        """The flow's API path, ``/flows/:org/:flow``."""
        return f"/flows/{self.organization.parameterized_name}/{self.parameterized_name}"


class Application(models.Model):
    """A developer (OAuth) application; its client secret also signs action tokens."""

    name = models.CharField(max_length=100)
    client_id = models.CharField(max_length=64, unique=True, default=long_token)
    client_secret = models.CharField(max_length=64, default=long_token)
    callback_uri = models.URLField(blank=True)
    setup_uri = models.URLField(blank=True)
    configuration_uri = models.URLField(blank=True)
    icon_url = models.URLField(blank=True)

    objects: ClassVar[models.Manager["Application"]]

    def __str__(self) -> str:
        return self.name


class Source(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="sources")
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, null=True, blank=True, related_name="sources"
    )
    creator = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=200)
    external_url = models.URLField(blank=True)
    flow_token = models.CharField(max_length=64, unique=True, default=hex_token)
    error_message = models.TextField(blank=True)
    configuration_url = models.URLField(blank=True)
    # Removed sources stay so that their token can answer 410 instead of 401.
    removed_at = models.DateTimeField(null=True, blank=True)
    # The seeded source survives a reset.
    is_seed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager["Source"]]
    flow_id: str

    def __str__(self) -> str:
        return self.name


class Thread(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=opaque_id)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="threads")
    # None for a thread a chat message started; such threads are not in the team inbox.
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, null=True, blank=True, related_name="threads"
    )
    external_thread_id = models.CharField(max_length=255, blank=True)
    title = models.TextField()
    body = models.TextField(blank=True)
    external_url = models.URLField(max_length=2000, blank=True)
    status_value = models.CharField(max_length=100, blank=True)
    status_color = models.CharField(max_length=20, blank=True)
    fields = models.JSONField(default=list)
    actions = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager["Thread"]]
    flow_id: str
    source_id: int | None
    messages: "RelatedManager[Message]"

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_thread_id"],
                condition=~models.Q(external_thread_id=""),
                name="unique_external_thread",
            )
        ]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    """Anything posted to a flow: inbox activities and discussions, chat messages,
    comments, statuses and files."""

    INBOX_EVENTS = ("activity", "discussion")

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="messages")
    # The integration that posted it (flow token); None when a user did.
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, null=True, blank=True, related_name="messages"
    )
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, null=True, blank=True, related_name="messages"
    )
    thread = models.ForeignKey(
        Thread, on_delete=models.CASCADE, null=True, blank=True, related_name="messages"
    )
    # The commented message, for ``comment`` events.
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="comments"
    )
    event = models.CharField(max_length=20)
    content = models.JSONField(null=True, blank=True)
    title = models.TextField(blank=True)
    body = models.TextField(blank=True)
    author = models.JSONField(default=dict)
    tags = models.JSONField(default=list)
    uuid = models.CharField(max_length=255, blank=True)
    # True when the flow already had a message with this uuid: kept, and shown as such.
    repeated = models.BooleanField(default=False)
    # The thread as this message left it, as Flowdock returns it with each message.
    thread_state = models.JSONField(default=dict)
    edited_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager["Message"]]
    flow_id: str
    source_id: int | None
    user_id: int | None
    thread_id: str | None
    attachments: "RelatedManager[Attachment]"

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event}: {self.title or self.content}"

    @property
    def app(self) -> str:
        return "influx" if self.event in self.INBOX_EVENTS else "chat"


def file_token() -> str:
    return secrets.token_hex(16)


class Attachment(models.Model):
    """A stored file: an uploaded ``file`` message or an inbox message's attachment."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    # The id bodies use as ``cid:ID``; may be blank.
    content_id = models.CharField(max_length=255, blank=True)
    token = models.CharField(max_length=32, unique=True, default=file_token)
    file_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    data = models.BinaryField()
    size = models.PositiveIntegerField()
    # Read from the file when it is a PNG, GIF or JPEG image (see images.py).
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)

    objects: ClassVar[models.Manager["Attachment"]]

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.file_name

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


class ActionInvocation(models.Model):
    """One press of an UpdateAction button and what the integration answered."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="invocations")
    action_name = models.CharField(max_length=200)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    detail = models.TextField(blank=True)
    sign_in_url = models.URLField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager["ActionInvocation"]]

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.action_name}: {self.status_code}"


class AuthorizationCode(models.Model):
    LIFETIME = timedelta(minutes=10)

    code = models.CharField(max_length=64, unique=True, default=long_token)
    application = models.ForeignKey(Application, on_delete=models.CASCADE)
    user = models.ForeignKey(User, on_delete=models.CASCADE)
    redirect_uri = models.URLField(max_length=2000)
    scope = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager["AuthorizationCode"]]

    def __str__(self) -> str:
        return f"code for {self.application}"

    @property
    def expired(self) -> bool:
        return timezone.now() > self.created_at + self.LIFETIME


class AccessToken(models.Model):
    LIFETIME = timedelta(hours=2)

    access_token = models.CharField(max_length=64, unique=True, default=long_token)
    refresh_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    application = models.ForeignKey(Application, on_delete=models.CASCADE)
    user = models.ForeignKey(User, on_delete=models.CASCADE)
    scope = models.CharField(max_length=200)
    # Replaying a code revokes what it issued (RFC 6749, section 4.1.2).
    authorization_code = models.ForeignKey(
        AuthorizationCode, on_delete=models.SET_NULL, null=True, blank=True
    )
    expires_at = models.DateTimeField()

    objects: ClassVar[models.Manager["AccessToken"]]

    def __str__(self) -> str:
        return f"token for {self.application}"

    @property
    def scopes(self) -> set[str]:
        return set(self.scope.replace(",", " ").split())
