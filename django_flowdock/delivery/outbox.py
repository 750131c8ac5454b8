"""Writing captured changes to the outbox, in the transaction of the change.

This is all the save path pays for the integration: one ``INSERT`` of a small row and
one ``on_commit`` callback. Sources, rendering, validation and HTTP all happen later,
in the delivery engine.
"""

from __future__ import annotations

import json
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, transaction
from django.utils import timezone

from django_flowdock.models import Change


@dataclass
class _Transaction:
    #: Shared by the transaction's changes, so the engine can coalesce them.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
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


def forget_transaction(using: str) -> None:
    """Drop what the connection's last transaction left (a rollback leaves it: nothing
    tells us of one). Called when a save starts outside a transaction, and when a
    request starts."""
    _transactions.pop(connections[using], None)


def forget_transactions(**kwargs: Any) -> None:
    """A ``request_started`` receiver: every connection of this thread starts clean."""
    for connection in connections.all(initialized_only=True):
        _transactions.pop(connection, None)


def values_before(using: str, key: tuple[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
    """The object's values when the current transaction first changed it (``loaded``
    if this is the first time). Saves rolled back to a savepoint leave the instance's
    own snapshot ahead of the database; these values are not."""
    current = _current(connections[using])
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


def encode(values: dict[str, Any]) -> str:
    return json.dumps(values, cls=_Encoder) if values else ""


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
    created_at = Change._meta.get_field("created_at").get_db_prep_save(timezone.now(), connection)
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
    transaction.on_commit(lambda: _committed(connection, token), using=using, robust=True)


def _committed(connection: Any, token: str) -> None:
    if token:
        current = _transactions.get(connection)
        if current is None or current.token != token:
            return
        del _transactions[connection]
    from django_flowdock.delivery import get_backend

    get_backend().dispatch()
