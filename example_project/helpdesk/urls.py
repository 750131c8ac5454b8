from django.urls import path

from . import views

app_name = "helpdesk"

urlpatterns = [
    path("", views.TicketListView.as_view(), name="ticket-list"),
    path("tickets/new/", views.TicketCreateView.as_view(), name="ticket-create"),
    path("tickets/<int:pk>/", views.TicketDetailView.as_view(), name="ticket-detail"),
    path("tickets/<int:pk>/edit/", views.TicketUpdateView.as_view(), name="ticket-edit"),
    path("tickets/<int:pk>/reply/", views.ReplyCreateView.as_view(), name="ticket-reply"),
]
