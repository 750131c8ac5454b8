from django.apps import apps
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


# Exempt: the gunicorn benchmark posts without a session (the test client never checks).
@csrf_exempt
@require_POST
def rename(request, model, pk):
    """Save one object with a new subject, as a form view would."""
    obj = apps.get_model(model)._default_manager.get(pk=pk)
    obj.subject = request.POST["subject"]
    obj.save()
    return HttpResponse(status=204)
