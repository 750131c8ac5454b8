"""Settings of the processes the lifecycle tests start (servers, shells, scripts): the
suite's own, with FLOWDOCK adjusted by the JSON in FLOWDOCK_OVERRIDES."""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import FLOWDOCK as _SUITE_FLOWDOCK

FLOWDOCK = {**_SUITE_FLOWDOCK, **json.loads(os.environ.get("FLOWDOCK_OVERRIDES", "{}"))}

# What the delivery thread says (rounds that failed, probes), in the server's log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django_flowdock": {"handlers": ["stderr"], "level": "INFO"}},
}
