"""Plain server-rendered pages; every save here becomes a Flowdock message."""

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import get_object_or_404, redirect
from django.views import generic

from .forms import ReplyForm, TicketForm
from .models import Ticket


class TicketListView(LoginRequiredMixin, generic.ListView):
    model = Ticket
    paginate_by = 25

    def get_queryset(self):
        tickets = Ticket.objects.select_related("assignee")
        status = self.request.GET.get("status")
        if status in Ticket.Status.values:
            tickets = tickets.filter(status=status)
        return tickets

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            statuses=Ticket.Status.choices, current_status=self.request.GET.get("status"), **kwargs
        )


class TicketDetailView(LoginRequiredMixin, generic.DetailView):
    model = Ticket

    def get_queryset(self):
        return Ticket.objects.select_related("assignee")

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            replies=self.object.replies.select_related("author"), reply_form=ReplyForm(), **kwargs
        )


class TicketCreateView(LoginRequiredMixin, generic.CreateView):
    model = Ticket
    form_class = TicketForm

    def form_valid(self, form):
        messages.success(self.request, "Ticket created; its thread is on its way to Flowdock.")
        return super().form_valid(form)


class TicketUpdateView(LoginRequiredMixin, generic.UpdateView):
    model = Ticket
    form_class = TicketForm

    def form_valid(self, form):
        messages.success(self.request, "Ticket saved.")
        return super().form_valid(form)


class ReplyCreateView(LoginRequiredMixin, generic.CreateView):
    form_class = ReplyForm
    template_name = "helpdesk/ticket_detail.html"

    def dispatch(self, request, *args, **kwargs):
        self.ticket = get_object_or_404(Ticket, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, *args, **kwargs):
        return redirect(self.ticket)

    def form_valid(self, form):
        form.instance.ticket = self.ticket
        form.instance.author = self.request.user
        messages.success(self.request, "Reply posted.")
        return super().form_valid(form)

    def get_success_url(self):
        return self.ticket.get_absolute_url()

    def get_context_data(self, **kwargs):
        # A reply with errors re-renders the ticket page, its form keeping what was typed.
        context = super().get_context_data(**kwargs)
        context.update(
            object=self.ticket,
            ticket=self.ticket,
            replies=self.ticket.replies.select_related("author"),
            reply_form=context["form"],
        )
        return context
