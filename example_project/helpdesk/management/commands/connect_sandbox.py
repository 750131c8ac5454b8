"""Point this project at a running sandbox, from the credentials file it wrote.

Idempotent: re-running updates the same source and application, so the demo can run
it on every start (the sandbox may have been re-seeded with new tokens meanwhile).
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from django_flowdock.models import OAuthApplication, Source


class Command(BaseCommand):
    help = "Create or update the Source and OAuthApplication for a sandbox's credentials file."

    def add_arguments(self, parser):
        parser.add_argument(
            "credentials_file",
            help="The JSON written by `python -m django_flowdock.sandbox --credentials-file`.",
        )

    def handle(self, *args, credentials_file, **options):
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

        verb = "Connected" if created else "Updated"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} source {connected.name!r} → {flow['web_url']}")
        )
