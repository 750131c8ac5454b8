"""Settings of the sandbox process; unrelated to the settings of the project it serves.

``python -m django_flowdock.sandbox`` sets ``FLOWDOCK_SANDBOX_DB`` before Django starts.
"""

import os

# The sandbox is a local development tool that holds no real secrets.
SECRET_KEY = "flowdock-sandbox-development-only"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["rest_framework", "django_flowdock.sandbox"]
MIDDLEWARE = [
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
        "NAME": os.environ.get("FLOWDOCK_SANDBOX_DB", "flowdock-sandbox.sqlite3"),
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
