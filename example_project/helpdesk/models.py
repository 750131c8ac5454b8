"""Tickets and their replies, shown in Flowdock as threads and their discussions."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from django_flowdock.actions import flowdock_action
from django_flowdock.mixins import FlowdockComment, FlowdockThread


class Ticket(FlowdockThread, models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        SOLVED = "solved", "Solved"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    priority = models.CharField(max_length=20, choices=Priority.choices, default=Priority.NORMAL)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    class FlowdockMeta:
        title = "subject"
        body = "description"
        status = "status"
        status_colors = {"open": "green", "pending": "yellow", "solved": "grey"}
        fields = ["priority", "assignee"]
        external_url = "get_absolute_url"

    def __str__(self) -> str:
        return self.subject

    def get_absolute_url(self) -> str:
        return reverse("helpdesk:ticket-detail", args=[self.pk])

    # Buttons on the thread in Flowdock. The first press from an unknown Flowdock user
    # leads to a sign-in link; after that the action runs as the linked local user,
    # who needs the change_ticket permission.
    @flowdock_action(
        "Assign to me",
        condition=lambda ticket, user: ticket.assignee_id != getattr(user, "pk", None),
        description="Make me the assignee",
    )
    def assign_to_me(self, user) -> None:
        self.assignee = user

    @flowdock_action("Mark as solved", condition=lambda ticket, user: ticket.status != "solved")
    def mark_as_solved(self, user) -> None:
        self.status = self.Status.SOLVED


class Reply(FlowdockComment, models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="replies")
    text = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="replies"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "replies"

    class FlowdockMeta:
        thread = "ticket"
        body = "text"
        # Outside a request (shell, admin actions in a worker) the reply's author still shows.
        author = "author"

    def __str__(self) -> str:
        return f"Reply to {self.ticket} by {self.author}"

    @classmethod
    def from_flowdock(cls, ticket, message, author):
        """A reply typed in the ticket's Flowdock thread (``manage.py flowdock_listen``)."""
        return cls.objects.create(ticket=ticket, text=message.text, author=author)
