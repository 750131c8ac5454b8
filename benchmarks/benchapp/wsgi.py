"""The WSGI application ``benchmarks.view_latency_gunicorn`` serves with gunicorn.

``BENCH_API_URL`` is Flowdock's stand-in; ``BENCH_ARM`` says what the server runs:
``plain`` without the app's effect (no author middleware, no delivery thread),
``worker`` with the app but the ``worker`` backend (nothing delivers in the server),
``no-yield`` with the ``immediate`` backend that never waits for requests
(``REQUEST_YIELD`` 0), anything else with the package's defaults (``immediate``).
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

# Before the apps are ready: the delivery thread starts at ready() and reads FLOWDOCK.
settings.FLOWDOCK["API_URL"] = os.environ["BENCH_API_URL"]
arm = os.environ.get("BENCH_ARM", "default")
if arm == "plain":
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.startswith("django_flowdock")]
    settings.FLOWDOCK["DELIVER_ON_START"] = False
elif arm == "worker":
    settings.FLOWDOCK["DELIVERY"] = "worker"
elif arm == "no-yield":
    settings.FLOWDOCK["REQUEST_YIELD"] = 0

application = get_wsgi_application()
