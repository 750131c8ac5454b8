"""Per-transaction bookkeeping: what this transaction queued so far.

Used to hand a transaction's messages to the backend once (one on-commit callback,
one task) and to coalesce several saves of one item into one message. The state is
anchored by a no-op on-commit callback: Django drops the callback list when the
transaction ends, and drops the callbacks of a savepoint that is rolled back, so the
state never outlives its transaction, and a callback lost to a rollback is noticed
and registered again. Inside a test case's wrapping transaction only the blocks the
code itself opened count, so tests see the behaviour of production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction

_ATTRIBUTE = "_flowdock_transaction"


def _new_anchor() -> Callable[[], None]:
    """A distinct callback that does nothing on commit: its presence in the callback
    list shows the transaction is still the one the state belongs to."""
    return lambda: None


@dataclass
class TransactionState:
    hooks: list[Any]
    marker: object
    anchor: Callable[[], None]
    #: backend → (message ids handed to its on-commit callback, that callback)
    dispatch: dict[Any, tuple[list[int], Any]] = field(default_factory=dict)
    #: thread key → what was queued for that thread, for coalescing
    queued: dict[str, Any] = field(default_factory=dict)


def _holds(hooks: list[Any], callback: Callable[[], None]) -> bool:
    # Entries are (savepoint ids, callback, robust); a savepoint rollback rebuilds the
    # tuples, so the callback's identity is what survives.
    return any(entry[1] is callback for entry in reversed(hooks))


def current_transaction(using: str) -> TransactionState | None:
    """State of the transaction the code opened on ``using``, or ``None`` in
    autocommit mode (where every save is its own transaction)."""
    connection = connections[using]
    if not connection.in_atomic_block:
        return None
    blocks = connection.atomic_blocks
    index = next(
        (n for n, block in enumerate(blocks) if not getattr(block, "_from_testcase", False)),
        None,
    )
    if index is None:
        return None
    block = blocks[index]
    # Inside a test case the code's outermost block is a savepoint, whose id tells two
    # such blocks apart (the test's callback list lives on across them).
    marker = (connection.savepoint_ids[index - 1] or block) if index else None
    hooks = connection.run_on_commit
    state = getattr(connection, _ATTRIBUTE, None)
    if state is not None and (state.marker != marker or not _holds(hooks, state.anchor)):
        state = None
    if state is None:
        anchor = _new_anchor()
        connection.on_commit(anchor)
        state = TransactionState(hooks=hooks, marker=marker, anchor=anchor)
        setattr(connection, _ATTRIBUTE, state)
    elif state.hooks is not hooks:
        # A savepoint was rolled back: forget callbacks it took with it.
        state.dispatch = {
            backend: entry for backend, entry in state.dispatch.items() if _holds(hooks, entry[1])
        }
        state.hooks = hooks
    return state


def on_commit_once(
    using: str,
    state: TransactionState,
    key: Any,
    ids: list[int],
    callback: Callable[[list[int]], None],
) -> None:
    """Call ``callback`` with every id given under ``key`` once the transaction
    commits (robustly: an error is logged, never raised into the committed code)."""
    pending = state.dispatch.get(key)
    if pending is not None:
        pending[0].extend(ids)
        return
    collected = list(ids)

    def run() -> None:
        callback(collected)

    transaction.on_commit(run, using=using, robust=True)
    state.dispatch[key] = (collected, run)
