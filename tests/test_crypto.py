"""Secrets are encrypted at rest, readable after key rotation, and fail loudly otherwise."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from django_flowdock.exceptions import FlowdockConfigurationError
from django_flowdock.models import OAuthApplication, Source

pytestmark = pytest.mark.django_db


def raw_column(model, field, pk):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {field} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_flow_token_and_client_secret_are_encrypted_in_the_database():
    source = Source.objects.create(name="x", flow_token="be299b91fffe8e41")
    app = OAuthApplication.objects.create(name="a", client_id="id", client_secret="s3cret-value")
    assert "be299b91fffe8e41" not in raw_column(Source, "flow_token", source.pk)
    assert "s3cret-value" not in raw_column(OAuthApplication, "client_secret", app.pk)
    assert Source.objects.get(pk=source.pk).flow_token == "be299b91fffe8e41"


def test_rotated_secret_key_still_reads_rows_through_fallbacks(settings):
    source = Source.objects.create(name="x", flow_token="token")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key"
    assert Source.objects.get(pk=source.pk).flow_token == "token"


def test_rotate_command_re_encrypts_with_the_newest_key(settings):
    source = Source.objects.create(name="x", flow_token="token")
    old_raw = raw_column(Source, "flow_token", source.pk)
    new_key = Fernet.generate_key().decode()
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY_FALLBACKS = [old_key]
    settings.FLOWDOCK = {**settings.FLOWDOCK, "ENCRYPTION_KEYS": [new_key]}
    with pytest.raises(FlowdockConfigurationError, match="cannot be decrypted"):
        Source.objects.get(pk=source.pk)
    from django_flowdock.crypto import _derive

    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "ENCRYPTION_KEYS": [new_key, _derive(old_key).decode()],
    }
    call_command("flowdock_rotate_keys", verbosity=0)
    assert raw_column(Source, "flow_token", source.pk) != old_raw
    settings.FLOWDOCK = {**settings.FLOWDOCK, "ENCRYPTION_KEYS": [new_key]}
    assert Source.objects.get(pk=source.pk).flow_token == "token"


def test_malformed_encryption_key_names_the_setting(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "ENCRYPTION_KEYS": ["not-a-key"]}
    with pytest.raises(FlowdockConfigurationError, match='FLOWDOCK\\["ENCRYPTION_KEYS"\\]'):
        Source.objects.create(name="x", flow_token="token")
