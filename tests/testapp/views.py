from django.http import HttpResponse
from django.views.decorators.http import require_POST

from .models import Ticket


@require_POST
def solve(request, pk):
    ticket = Ticket.objects.get(pk=pk)
    ticket.state = "solved"
    ticket.save()
    return HttpResponse(status=204)
