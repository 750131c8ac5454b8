"""The public contract (the quick start's models), verbatim: it must work exactly as
written."""

from django.db import models

from django_flowdock.mixins import FlowdockComment, FlowdockThread


class Ticket(FlowdockThread, models.Model):
    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=20, default="open")
    priority = models.CharField(max_length=20, default="normal")

    class FlowdockMeta:
        title = "subject"
        body = "description"
        status = "state"
        status_colors = {"open": "green", "pending": "yellow", "solved": "grey"}
        fields = ["priority"]
        external_url = "get_absolute_url"


class Reply(FlowdockComment, models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE)
    text = models.TextField()

    class FlowdockMeta:
        thread = "ticket"
        body = "text"
