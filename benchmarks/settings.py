"""The test settings plus the benchmarks' app, with the package's default FLOWDOCK
settings (the default ``immediate`` backend, default backoff): only ``SITE_URL`` is
set, and ``API_URL`` by each benchmark."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.benchapp"]
ROOT_URLCONF = "benchmarks.benchapp.urls"
FLOWDOCK = {"SITE_URL": "https://helpdesk.example"}
