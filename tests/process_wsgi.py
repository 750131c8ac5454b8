"""The WSGI application the lifecycle tests serve with gunicorn."""

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
