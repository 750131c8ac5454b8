from django import forms

from .models import Reply, Ticket


class TicketForm(forms.ModelForm):
    class Meta:
        model = Ticket
        fields = ["subject", "description", "status", "priority", "assignee"]
        widgets = {"description": forms.Textarea(attrs={"rows": 6})}


class ReplyForm(forms.ModelForm):
    class Meta:
        model = Reply
        fields = ["text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 4, "placeholder": "Write a reply…"})}
        labels = {"text": "Reply"}
