"""Settings for the test suite: SQLite by default, DATABASE_URL for PostgreSQL."""

import os

import environ

env = environ.Env()

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Lets live_server serve the admin's CSS, for browser tests' screenshots.
    "django.contrib.staticfiles",
    "rest_framework",
    "django_flowdock",
    "django_flowdock.conversations",
    "tests.testapp",
    "tests.contractapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_flowdock.context.FlowdockAuthorMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default="sqlite:///:memory:")}
# One test database per process, so concurrent runs (xdist workers, several checkouts)
# never share or delete each other's; subprocesses inherit the suffix via the environment.
_suffix = os.environ.setdefault(
    "FLOWDOCK_TEST_DB_SUFFIX", f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so threads and worker subprocesses share it.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(os.path.dirname(__file__), f".test_{_suffix}.sqlite3")
    }
    # Writers wait for each other (busy timeout) instead of failing at once when a read
    # transaction would have to become a write one: the default backend delivers from a
    # thread of its own, beside the test's own writes.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_flowdock_{_suffix}"}

STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

FLOWDOCK = {
    "API_URL": "http://127.0.0.1:9",  # replaced per test by the sandbox's URL
    "SITE_URL": "https://helpdesk.example",
    "BACKOFF_BASE": 0.01,
    "BACKOFF_MAX": 0.05,
}
