from django.core.management.base import BaseCommand
from django.db import transaction

from django_flowdock.crypto import EncryptedTextField
from django_flowdock.models import OAuthApplication, OAuthToken, Source


class Command(BaseCommand):
    help = (
        'Re-encrypt every stored secret with the newest key (FLOWDOCK["ENCRYPTION_KEYS"][0] '
        "or the current SECRET_KEY). Run after adding a key; then drop the old one."
    )

    def handle(self, *args, **options):
        for model in (OAuthApplication, OAuthToken, Source):
            names = [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]
            count = 0
            with transaction.atomic():
                for obj in model.objects.select_for_update().only("pk", *names):
                    # Loading decrypts with any key; saving encrypts with the newest.
                    obj.save(update_fields=names)
                    count += 1
            self.stdout.write(f"{model._meta.verbose_name_plural}: {count} re-encrypted")
