"""Encryption of secrets at rest (client secrets, OAuth tokens, flow tokens).

Keys come from ``FLOWDOCK["ENCRYPTION_KEYS"]`` (Fernet keys, newest first) or are
derived from ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``. New values are encrypted
with the first key; every key can decrypt, so keys can be rotated by prepending a new
one and running ``manage.py flowdock_rotate_keys``, which re-encrypts every row.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Imported now: older cryptography releases import their OpenSSL backend on the first
# decryption, and two threads decrypting at once (delivery and a request) could both
# start that import ("partially initialized module").
from cryptography.hazmat.backends.openssl import backend as _openssl  # noqa: F401
from django.conf import settings
from django.db import models

from django_flowdock.conf import flowdock_settings
from django_flowdock.exceptions import FlowdockConfigurationError

_PREFIX = "fernet:"


def _derive(secret: str) -> bytes:
    digest = hashlib.sha256(b"django-flowdock:encryption:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _keys() -> tuple[bytes, ...]:
    configured = flowdock_settings.ENCRYPTION_KEYS
    if configured:
        return tuple(k.encode() if isinstance(k, str) else k for k in configured)
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return tuple(_derive(s) for s in secrets if s)


@lru_cache(maxsize=8)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise FlowdockConfigurationError(
            'FLOWDOCK["ENCRYPTION_KEYS"] must hold Fernet keys '
            "(generate one with cryptography.fernet.Fernet.generate_key())."
        ) from exc


def encrypt(value: str) -> str:
    return _PREFIX + _fernet(_keys()).encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    if not value.startswith(_PREFIX):
        raise FlowdockConfigurationError("A stored secret is not encrypted by django-flowdock.")
    try:
        return _fernet(_keys()).decrypt(value[len(_PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise FlowdockConfigurationError(
            "A stored secret cannot be decrypted with the current keys. Keep the old "
            'SECRET_KEY in SECRET_KEY_FALLBACKS (or the old key in FLOWDOCK["ENCRYPTION_KEYS"]) '
            "until flowdock_rotate_keys has re-encrypted every row."
        ) from exc


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; Python code sees plain text."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)
