"""``manage.py flowdock_prune``: delete what delivery no longer needs.

With N days (``--days``, else ``FLOWDOCK["PRUNE_AFTER_DAYS"]``) it deletes exactly:

1. sent messages sent more than N days ago, except the newest message of each thread
   and source, kept however old: it records which sources (so which applications)
   received the thread, which decides whose FLOWDOCK-TOKEN may act on it;
2. then captured changes made more than N days ago that were fanned out and that no
   remaining message refers to, except the deletion of an object that a pending,
   failed or cancelled message (of any source) is about: its activity, or a discussion
   in its thread, renders from that deletion's last values when it is retried.

Pending, failed and cancelled messages, and changes not fanned out yet, are never
deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from django_flowdock.conf import flowdock_settings
from django_flowdock.delivery.fanout import captured_thread, concrete_label
from django_flowdock.models import Change, Message

CHUNK = 5000


class Command(BaseCommand):
    help = (
        'Delete sent messages older than FLOWDOCK["PRUNE_AFTER_DAYS"] days, except the '
        "newest of each thread and source; then the fanned-out changes older than that "
        "which no remaining message refers to, keeping the deletion of any object a "
        "pending, failed or cancelled message is about. Pending, failed and cancelled "
        "messages are never deleted."
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
            remaining = Message.objects.exclude(pk__in=old.values("pk"))
            changes = sum(len(pks) for pks in unneeded_changes(cutoff, remaining))
            self.stdout.write(f"{old.count()} sent messages older than {days:g} days.")
            self.stdout.write(f"{changes} delivered changes older than {days:g} days.")
            return
        deleted = 0
        # In chunks, so a large log is not locked in one long statement.
        while pks := list(old.order_by("pk").values_list("pk", flat=True)[:CHUNK]):
            deleted += Message.objects.filter(pk__in=pks).delete()[0]
        self.stdout.write(f"Deleted {deleted} sent messages older than {days:g} days.")
        changes = 0
        for pks in unneeded_changes(cutoff, Message.objects.all()):
            changes += Change.objects.filter(pk__in=pks).delete()[0]
        self.stdout.write(f"Deleted {changes} delivered changes older than {days:g} days.")


def unneeded_changes(cutoff: datetime, remaining: QuerySet[Message]) -> Iterator[list[int]]:
    """Chunks of the pks of the changes made before ``cutoff`` that were fanned out,
    that no message of ``remaining`` refers to, and whose deletion (if they are one)
    no unsent message needs."""
    needed = needed_deletions()
    candidates = (
        Change.objects.filter(fanned_out=True, created_at__lt=cutoff)
        .exclude(Exists(remaining.filter(change=OuterRef("pk"))))
        .order_by("pk")
        .values_list("pk", "event", "model", "object_pk")
    )
    last = 0
    while rows := list(candidates.filter(pk__gt=last)[:CHUNK]):
        last = rows[-1][0]
        yield [
            pk
            for pk, event, model, object_pk in rows
            if event != Change.Event.DELETED or (model, object_pk) not in needed
        ]


def needed_deletions() -> set[tuple[str, str]]:
    """(model, object_pk) of the objects whose deletion change a pending, failed or
    cancelled message renders from once the object is gone: the object of its change,
    or, for a discussion, the thread its comment change captured."""
    unsent = Change.objects.filter(
        pk__in=Message.objects.exclude(state=Message.State.SENT).values("change")
    )
    needed: set[tuple[str, str]] = set(
        unsent.exclude(event=Change.Event.COMMENTED).values_list("model", "object_pk")
    )
    for values in unsent.filter(event=Change.Event.COMMENTED).values_list("values", flat=True):
        thread = _thread(values)
        if thread is not None:
            needed.add(thread)
    return needed


def _thread(values: str) -> tuple[str, str] | None:
    try:
        found = captured_thread(json.loads(values)) if values else None
    except LookupError:  # the thread's model was removed since
        return None
    if found is None:
        return None
    model, pk = found
    return concrete_label(model), pk
