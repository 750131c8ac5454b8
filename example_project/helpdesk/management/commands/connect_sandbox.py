"""Point this project at a running sandbox, from the credentials file it wrote.

Idempotent: re-running updates the same source and application, so the demo can run
it on every start (the sandbox may have been re-seeded with new tokens meanwhile).
"""

import json
import re
from pathlib import Path

import requests
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from django_flowdock.conf import flowdock_settings
from django_flowdock.models import OAuthApplication, OAuthToken, Source


class Command(BaseCommand):
    help = "Create or update the Source and OAuthApplication for a sandbox's credentials file."

    def add_arguments(self, parser):
        parser.add_argument(
            "credentials_file",
            help="The JSON written by `python -m django_flowdock.sandbox --credentials-file`.",
        )
        parser.add_argument(
            "--redirect-uri",
            default="",
            help="The application's OAuth callback URI; with it, the sandbox user also "
            "grants a token with the scopes of FLOWDOCK['OAUTH_SCOPES'], so "
            "`manage.py flowdock_listen` can read the flow.",
        )

    def handle(self, *args, credentials_file, redirect_uri, **options):
        try:
            found = json.loads(Path(credentials_file).read_text())
            flow, source, app = found["flow"], found["source"], found["application"]
        except (OSError, ValueError, KeyError) as error:
            raise CommandError(
                f"Cannot read sandbox credentials from {credentials_file}: {error}. "
                "Start the sandbox with --credentials-file pointing there first."
            ) from error

        with transaction.atomic():
            application, _ = OAuthApplication.objects.update_or_create(
                client_id=app["client_id"],
                defaults={
                    "name": f"{app['name']} (sandbox)",
                    "client_secret": app["client_secret"],
                    "api_url": found["url"],
                },
            )
            flow_path = f"{flow['organization']}/{flow['parameterized_name']}"
            connected, created = Source.objects.update_or_create(
                name=f"Sandbox: {flow_path}",
                defaults={
                    "flow_token": source["flow_token"],
                    "active": True,
                    "error_message": "",
                    "deactivated_at": None,
                    "application": application,
                    "flowdock_id": str(source["id"]),
                    "flow_id": str(flow["id"]),
                    "flow_name": flow["name"],
                    "flow_path": flow_path,
                },
            )

        if redirect_uri:
            scope = " ".join(flowdock_settings.OAUTH_SCOPES)
            connected.token = OAuthToken.objects.create(
                application=application,
                access_token=grant(found, redirect_uri, scope),
                scope=scope,
                flowdock_user_id=str(found["user"]["id"]),
            )
            connected.save(update_fields=["token"])
        verb = "Connected" if created else "Updated"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} source {connected.name!r} → {flow['web_url']}")
        )


def grant(found: dict, redirect_uri: str, scope: str) -> str:
    """An access token the sandbox's user grants on its consent page, as a person would
    when connecting a flow from the admin."""
    app, url = found["application"], found["url"]
    session = requests.Session()
    query = {
        "client_id": app["client_id"],
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "demo",
    }
    page = session.get(f"{url}/oauth/authorize", params=query, timeout=10)
    page.raise_for_status()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    answer = session.post(
        f"{url}/oauth/authorize",
        data={**query, "decision": "allow", "csrfmiddlewaretoken": csrf.group(1) if csrf else ""},
        allow_redirects=False,
        timeout=10,
    )
    code = re.search(r"[?&]code=([^&]+)", answer.headers.get("Location", ""))
    if code is None:
        raise CommandError(f"The sandbox did not grant a token: HTTP {answer.status_code}")
    token = session.post(
        f"{url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code.group(1),
            "redirect_uri": redirect_uri,
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
        headers={"Accept": "application/json"},
        timeout=10,
    )
    token.raise_for_status()
    return token.json()["access_token"]
