"""Settings of the sandbox process; unrelated to the settings of the project it serves.

``python -m django_flowdock.sandbox`` sets ``FLOWDOCK_SANDBOX_DB`` and
``FLOWDOCK_SANDBOX_HOSTS`` before Django starts.
"""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .limits import REQUEST_LIMIT
from .options import DEFAULT_DB, LOOPBACK_NAMES

DATABASE_FILE = Path(os.environ.get("FLOWDOCK_SANDBOX_DB", DEFAULT_DB))


def _secret_key(path: Path) -> str:
    """The key kept in ``path``, made on first start: random per sandbox (a public
    key would let any page forge what it signs), stable across its restarts."""
    if not path.exists():
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(partial, path)  # atomic: of two sandboxes starting at once, one key wins
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"The sandbox's secret key file {path} is empty; delete it.")
    return key


SECRET_KEY = _secret_key(DATABASE_FILE.with_name(DATABASE_FILE.name + ".secret-key"))
DEBUG = False
ALLOWED_HOSTS = os.environ.get("FLOWDOCK_SANDBOX_HOSTS", ",".join(LOOPBACK_NAMES)).split(",")

INSTALLED_APPS = ["rest_framework", "django_flowdock.sandbox"]
MIDDLEWARE = [
    # First: nothing may read a body too large to take.
    "django_flowdock.sandbox.limits.RequestSizeLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "django_flowdock.sandbox.urls"
# Flowdock's paths have no trailing slash; never redirect an API client.
APPEND_SLASH = False

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATABASE_FILE),
        "OPTIONS": {"timeout": 20},
    }
}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# RequestSizeLimitMiddleware refuses larger requests before they are read, so a JSON
# body (with base64 attachments) may use all of REQUEST_LIMIT; files in multipart
# bodies larger than FILE_UPLOAD_MAX_MEMORY_SIZE are spooled to disk while parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_LIMIT
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

USE_TZ = True
TIME_ZONE = "UTC"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "django_flowdock.sandbox.authentication.BearerTokenAuthentication",
        "django_flowdock.sandbox.authentication.APITokenBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["django_flowdock.sandbox.authentication.IsSandboxUser"],
    "EXCEPTION_HANDLER": "django_flowdock.sandbox.exceptions.flowdock_exception_handler",
    # No django.contrib.auth here: anonymous requests carry no user at all.
    "UNAUTHENTICATED_USER": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django_flowdock.sandbox": {"handlers": ["console"], "level": "INFO"},
    },
}
