"""``manage.py flowdock_resync``: post the current state of thread items again."""

from __future__ import annotations

from collections.abc import Iterable

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import router, transaction

from django_flowdock.delivery.outbox import capture
from django_flowdock.mixins import FlowdockThread, thread_models
from django_flowdock.models import Change

CHUNK = 200


def queue_current_state(model: type[FlowdockThread], objs: Iterable[FlowdockThread]) -> None:
    """Queue an "updated" activity with the current state of ``objs`` (objects of
    ``model``) in one transaction: each source that receives them gets it once the
    transaction commits. The admin's "Resend to Flowdock" button calls it too."""
    using = router.db_for_write(Change)
    concrete = model._meta.concrete_model
    assert concrete is not None
    label = concrete._meta.label_lower
    with transaction.atomic(using=using):
        for obj in objs:
            # A resync is shown even though no value changed.
            capture(
                using=using,
                model=label,
                object_pk=obj.pk,
                event=Change.Event.UPDATED,
                values={"resync": True},
            )


class Command(BaseCommand):
    help = (
        "Queue an 'updated' activity with the current state of every thread item (or of "
        "the models and ids given), e.g. after connecting a flow or restoring a backup."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            action="append",
            dest="models",
            metavar="APP_LABEL.MODEL",
            help="Only this FlowdockThread model (repeatable). Default: all of them.",
        )
        parser.add_argument(
            "--ids", help="Comma-separated primary keys (needs exactly one --model)."
        )

    def handle(self, *args, models, ids, **options):
        targets = self._models(models)
        if ids is not None and len(targets) != 1:
            raise CommandError("--ids needs exactly one --model.")
        pks = [pk.strip() for pk in ids.split(",") if pk.strip()] if ids is not None else None
        items = 0
        for model in targets:
            queryset = model._default_manager.order_by("pk")
            if pks is not None:
                queryset = queryset.filter(pk__in=pks)
            total = queryset.count()
            label = model._meta.label
            done = 0
            self._progress(label, done, total)
            # One transaction per chunk: the chunk's messages are handed over together.
            chunk: list = []
            for obj in queryset.iterator(chunk_size=CHUNK):
                chunk.append(obj)
                if len(chunk) == CHUNK:
                    queue_current_state(model, chunk)
                    done += len(chunk)
                    chunk = []
                    self._progress(label, done, total)
            if chunk:
                queue_current_state(model, chunk)
                done += len(chunk)
            self._progress(label, done, total, final=True)
            items += done
        self.stdout.write(f"Queued {items} items; each source receives their current state.")

    def _models(self, labels: list[str] | None) -> list[type[FlowdockThread]]:
        if not labels:
            # Proxies share their concrete model's threads: posting both would repeat.
            return thread_models(proxies=False)
        found: list[type[FlowdockThread]] = []
        for label in labels:
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError) as exc:
                raise CommandError(f"--model {label!r}: {exc}") from exc
            if not issubclass(model, FlowdockThread):
                raise CommandError(
                    f"--model {label!r} is not a FlowdockThread model; add the mixin first."
                )
            found.append(model)
        return found

    def _progress(self, label: str, done: int, total: int, final: bool = False) -> None:
        width = 30
        filled = width * done // total if total else width
        line = f"{label}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if self.stdout.isatty():
            self.stdout.write("\r" + line, ending="\n" if final else "")
            self.stdout.flush()
        elif final or done == 0:
            self.stdout.write(line)
