"""Writing captured changes to the outbox, in the transaction of the change.

This is all the save path pays for the integration: one ``INSERT`` of a small row and
one ``on_commit`` callback. Sources, rendering, validation and HTTP all happen later,
in the delivery engine.
"""

from __future__ import annotations

import secrets
import weakref
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.utils import timezone

from django_flowdock.models import Change


@dataclass
class _Transaction:
    #: Shared by the transaction's changes, so the engine can coalesce them.
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    #: (model, pk) → the object's values when the transaction first changed it.
    first_seen: dict[tuple[str, Any], dict[str, Any]] = field(default_factory=dict)


#: connection → the transaction it is in. Cleared when the transaction commits, and,
#: since nothing announces a rollback, when the next save starts outside a transaction
#: or a request starts.
_transactions: weakref.WeakKeyDictionary[Any, _Transaction] = weakref.WeakKeyDictionary()


def _current(connection: Any) -> _Transaction | None:
    """The bookkeeping of the transaction ``connection`` is in; ``None`` in autocommit."""
    if connection.get_autocommit():
        return None
    current = _transactions.get(connection)
    if current is None:
        current = _transactions[connection] = _Transaction()
    return current


def forget_transaction(connection: Any) -> None:
    """Drop what the connection's last transaction left (a rollback leaves it: nothing
    tells us of one). Called when a save starts outside a transaction."""
    _transactions.pop(connection, None)


def forget_transactions(**kwargs: Any) -> None:
    """A ``request_started`` receiver: every connection of this thread starts clean."""
    for connection in connections.all(initialized_only=True):
        _transactions.pop(connection, None)


def values_before(connection: Any, key: tuple[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
    """The object's values when the current transaction on ``connection`` first changed
    it (``loaded`` if this is the first time). Saves rolled back to a savepoint leave
    the instance's own snapshot ahead of the database; these values are not."""
    current = _current(connection)
    return loaded if current is None else current.first_seen.setdefault(key, loaded)


_COLUMNS = (
    "model",
    "object_pk",
    "event",
    "values",
    "author_pk",
    "transaction",
    "base_url",
    "created_at",
    "fanned_out",
    "described",
    "error",
)
_sql: dict[str, str] = {}


class _Encoder(DjangoJSONEncoder):
    """Any value a model holds becomes JSON: what the JSON encoder cannot take (bytes,
    custom types) is kept as its ``str()``, which is how it would be shown anyway."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)


#: One encoder for every change (it keeps no state between calls).
_encode = _Encoder().encode


def encode(values: dict[str, Any]) -> str:
    return _encode(values) if values else ""


def _insert_sql(connection: Any) -> str:
    sql = _sql.get(connection.vendor)
    if sql is None:
        qn = connection.ops.quote_name
        columns = ", ".join(qn(c) for c in _COLUMNS)
        placeholders = ", ".join(["%s"] * len(_COLUMNS))
        # Only quoted identifiers are interpolated; every value is a parameter.
        sql = _sql[connection.vendor] = (
            f"INSERT INTO {qn(Change._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
        )
    return sql


def capture(
    *,
    using: str,
    model: str,
    object_pk: Any,
    event: str,
    values: dict[str, Any] | None = None,
    author_pk: Any = None,
    base_url: str = "",
) -> None:
    """Write one change row in the current transaction; the delivery backend is told
    once the transaction commits (a rolled-back change leaves nothing behind)."""
    connection = connections[using]
    current = _current(connection)
    token = "" if current is None else current.token
    # timezone.now() is what the field's own preparation would be given and return.
    created_at = connection.ops.adapt_datetimefield_value(timezone.now())
    params = (
        model,
        str(object_pk),
        event,
        encode(values or {}),
        "" if author_pk is None else str(author_pk),
        token,
        base_url,
        created_at,
        False,
        "",
        "",
    )
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection), params)
    # One callback per change (a savepoint rolled back takes its callbacks with it);
    # the first to run for a transaction hands over, the others see the token gone.
    connection.on_commit(lambda: _committed(connection, token), robust=True)


def _committed(connection: Any, token: str) -> None:
    if token:
        current = _transactions.get(connection)
        if current is None or current.token != token:
            return
        del _transactions[connection]
    from django_flowdock.delivery import get_backend

    get_backend().dispatch()
