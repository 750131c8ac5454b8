"""``manage.py flowdock_prune``: delete old sent messages from the outbox.

The newest message of each thread and source is kept however old: it records which
sources (so which applications) received the thread, which decides whose
FLOWDOCK-TOKEN may act on it.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max
from django.utils import timezone

from django_flowdock.conf import flowdock_settings
from django_flowdock.models import Change, Message

CHUNK = 5000


class Command(BaseCommand):
    help = (
        'Delete sent messages older than FLOWDOCK["PRUNE_AFTER_DAYS"] days, except the '
        "newest of each thread and source."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help='Age in days (default: FLOWDOCK["PRUNE_AFTER_DAYS"]).',
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )

    def handle(self, *args, days, dry_run, **options):
        days = flowdock_settings.PRUNE_AFTER_DAYS if days is None else days
        if days is None or days < 0:
            raise CommandError(
                'Give --days or set FLOWDOCK["PRUNE_AFTER_DAYS"] to a number of days (>= 0).'
            )
        cutoff = timezone.now() - timedelta(days=days)
        newest = (
            Message.objects.order_by()
            .values("source", "thread_key")
            .annotate(newest=Max("pk"))
            .values("newest")
        )
        old = Message.objects.filter(state=Message.State.SENT, sent_at__lt=cutoff).exclude(
            pk__in=newest
        )
        if dry_run:
            self.stdout.write(f"{old.count()} sent messages older than {days:g} days.")
            return
        deleted = 0
        # In chunks, so a large log is not locked in one long statement.
        while pks := list(old.order_by("pk").values_list("pk", flat=True)[:CHUNK]):
            deleted += Message.objects.filter(pk__in=pks).delete()[0]
        self.stdout.write(f"Deleted {deleted} sent messages older than {days:g} days.")
        # Captured changes that were fanned out and no message needs any more.
        done = Change.objects.filter(fanned_out=True, created_at__lt=cutoff, messages__isnull=True)
        changes = 0
        while pks := list(done.order_by("pk").values_list("pk", flat=True)[:CHUNK]):
            changes += Change.objects.filter(pk__in=pks).delete()[0]
        self.stdout.write(f"Deleted {changes} delivered changes older than {days:g} days.")
