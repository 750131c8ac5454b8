"""`check --deploy`: the app's own deploy warnings, and an example project that its
environment can make clean."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from django_flowdock.checks import check_deploy_urls
from tests.test_example_project import MANAGE, ROOT, example_env


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def deploy_ids() -> list[str]:
    return ids(checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security]))


@pytest.fixture
def deployed(settings):
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "API_URL": "https://api.flowdock.com",
        "SITE_URL": "https://helpdesk.example",
    }
    return settings


def test_plain_http_api_url_is_w101_in_deploy_checks_only(deployed):
    deployed.FLOWDOCK = {**deployed.FLOWDOCK, "API_URL": "http://flowdock-proxy.internal"}
    [warning] = check_deploy_urls()
    assert warning.id == "django_flowdock.W101"
    assert "'http://flowdock-proxy.internal' is not HTTPS" in warning.msg
    assert "https://api.flowdock.com" in warning.hint
    assert "django_flowdock.W101" in deploy_ids()
    assert "django_flowdock.W101" not in ids(checks.run_checks(tags=[checks.Tags.security]))


@pytest.mark.parametrize(
    "api_url", ["https://api.flowdock.com", "http://127.0.0.1:8025", "http://localhost:8025"]
)
def test_https_or_loopback_api_url_passes_w101(deployed, api_url):
    deployed.FLOWDOCK = {**deployed.FLOWDOCK, "API_URL": api_url}
    assert check_deploy_urls() == []


@pytest.mark.parametrize("site_url", [None, ""])
def test_missing_site_url_is_w102_in_deploy_checks_only(deployed, site_url):
    deployed.FLOWDOCK = {**deployed.FLOWDOCK, "SITE_URL": site_url}
    [warning] = check_deploy_urls()
    assert warning.id == "django_flowdock.W102"
    assert "Host" in warning.msg
    assert 'Set FLOWDOCK["SITE_URL"]' in warning.hint
    assert "django_flowdock.W102" in deploy_ids()
    assert "django_flowdock.W102" not in ids(checks.run_checks(tags=[checks.Tags.security]))


def test_plain_http_site_url_is_w003_not_w102(deployed):
    deployed.FLOWDOCK = {**deployed.FLOWDOCK, "SITE_URL": "http://helpdesk.example"}
    assert check_deploy_urls() == []
    assert "django_flowdock.W003" in deploy_ids()


def manage_with(tmp_path: Path, env: dict[str, str], *args: str):
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=ROOT,
        env=example_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


HTTPS_ENVIRONMENT = {
    "SECURE_SSL_REDIRECT": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}
PRODUCTION = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "helpdesk.example",
    "FLOWDOCK_API_URL": "https://api.flowdock.com",
    "FLOWDOCK_SITE_URL": "https://helpdesk.example",
}


def test_example_project_deploy_check_is_clean_when_configured_for_https(tmp_path):
    result = manage_with(
        tmp_path,
        {**PRODUCTION, **HTTPS_ENVIRONMENT, "SECRET_KEY": secrets.token_urlsafe(50)},
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_example_project_defaults_stay_on_plain_http_for_the_local_demo(tmp_path):
    result = manage_with(tmp_path, {}, "check", "--deploy")
    output = result.stdout + result.stderr
    for warning in ("W004", "W008", "W012", "W016"):
        assert f"security.{warning}" in output, warning
    assert "django_flowdock.W1" not in output
