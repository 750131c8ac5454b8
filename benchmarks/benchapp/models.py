from django.conf import settings
from django.db import models


class PlainTicket(models.Model):
    """``tests.testapp.Ticket``'s fields without the mixin: the bare-save baseline."""

    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=20, default="open")
    priority = models.CharField(max_length=20, default="normal")
    project = models.ForeignKey("testapp.Project", null=True, blank=True, on_delete=models.CASCADE)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    internal_note = models.CharField(max_length=100, blank=True)


class OutboxRow(models.Model):
    """A minimal transactional outbox: one pre-serialised JSON row per message. The
    least any outbox design can write at save, and what the minimal drain reads."""

    payload = models.TextField()
    sent = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["sent", "id"])]
