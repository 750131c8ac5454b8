from django.conf import settings
from django.db import models

from django_flowdock.actions import flowdock_action
from django_flowdock.mixins import FlowdockComment, FlowdockThread


class Project(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.name


class Ticket(FlowdockThread, models.Model):
    """The exact model of the public contract (the quick start), plus a project and
    assignee."""

    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=20, default="open")
    priority = models.CharField(max_length=20, default="normal")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    internal_note = models.CharField(max_length=100, blank=True)

    class FlowdockMeta:
        title = "subject"
        body = "description"
        status = "state"
        status_colors = {"open": "green", "pending": "yellow", "solved": "grey"}
        fields = ["priority", ("Assignee", "assignee"), ("Project", "project.name")]
        external_url = "get_absolute_url"
        scope = "project"

    def __str__(self):
        return self.subject

    def get_absolute_url(self):
        return f"/tickets/{self.pk}/"

    @flowdock_action(
        "Assign to me",
        # Not offered once assigned to the user whose change produced the thread state.
        condition=lambda ticket, user: (
            ticket.assignee_id is None or ticket.assignee_id != getattr(user, "pk", None)
        ),
        description="Make me the assignee",
    )
    def assign_to_me(self, user):
        self.assignee = user

    @flowdock_action("Mark as solved", condition=lambda ticket, user: ticket.state != "solved")
    def mark_as_solved(self, user):
        self.state = "solved"


class Reply(FlowdockComment, models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE)
    text = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    flowdock_message_id = models.BigIntegerField(null=True, blank=True)

    class FlowdockMeta:
        thread = "ticket"
        body = "text"

    @classmethod
    def from_flowdock(cls, ticket, message, author):
        """A chat reply in the ticket's Flowdock thread (django_flowdock.conversations)."""
        return cls.objects.create(
            ticket=ticket, text=message.text, author=author, flowdock_message_id=message.id
        )


class Incident(FlowdockThread, models.Model):
    """Choices and computed options: get_flowdock_* methods instead of FlowdockMeta."""

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        HIGH = "high", "High — page someone"

    name = models.CharField(max_length=100)
    severity = models.CharField(max_length=10, choices=Severity.choices, default="low")

    class FlowdockMeta:
        title = "name"
        fields = ["severity"]
        author = "reporter_name"

    reporter_name = "Monitoring bot"

    def get_flowdock_status(self):
        return {"value": "firing", "color": "red"}


class Plain(models.Model):
    """A model without the mixin, for negative tests."""

    subject = models.CharField(max_length=200)


class Tag(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name


class Card(FlowdockThread, models.Model):
    """Every field type a thread may show: many-to-many, datetime, choices, foreign
    key, boolean, decimal, file and a reverse relation."""

    class Kind(models.TextChoices):
        BUG = "bug", "Bug report"
        FEATURE = "feature", "Feature request"

    title = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BUG)
    due = models.DateTimeField(null=True, blank=True)
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL)
    urgent = models.BooleanField(default=False)
    estimate = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    attachment = models.FileField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="cards")

    class FlowdockMeta:
        title = "title"
        body = "notes"
        status = "kind"
        status_colors = {"bug": "red", "feature": "blue"}
        fields = [
            "tags",
            "due",
            "project",
            "urgent",
            "estimate",
            "attachment",
            ("Subtasks", "subtasks"),
        ]

    def __str__(self):
        return self.title


class Subtask(models.Model):
    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="subtasks")
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.name


class CardComment(FlowdockComment, models.Model):
    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="comments")
    text = models.TextField()

    class FlowdockMeta:
        thread = "card"
        body = "text"

    def __str__(self):
        return self.text[:50]
