"""One line, never a traceback, when the database fails under a read; and a
write that lost a deadlock runs again.

Writes go through each class's own transaction helper, which names what could
not be written. Reads (counts, pages of the journal, a suppression lookup)
would otherwise let a psycopg error escape mid-run: a server restarted, a
connection cut, a database dropped. ``guarded`` wraps every public method of
a class, generators included, so such an error becomes a DigestError.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import psycopg
from psycopg.errors import DeadlockDetected

from digest.errors import DigestError, first_line

T = TypeVar("T")
P = ParamSpec("P")

_TRIES = 3  # a cycle needs two writers at the same rows; three in a row is no accident


def _failed(exc: psycopg.Error) -> DigestError:
    first = first_line(exc)
    return DigestError(f"the PostgreSQL state could not be read ({first}); check that the "
                       "server is up and reachable, then run again")


def _wrap(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def pages(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(*args, **kwargs)
            except psycopg.Error as exc:
                raise _failed(exc) from exc
        return pages

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except psycopg.Error as exc:
            raise _failed(exc) from exc
    return call


def guarded(cls: type[T]) -> type[T]:
    """``cls`` with every public method's psycopg errors turned into DigestError."""
    for name, value in list(vars(cls).items()):
        public = not name.startswith("_") or name == "__iter__"
        if public and inspect.isfunction(value):
            setattr(cls, name, _wrap(value))
    return cls


def again_on_deadlock(write: Callable[P, T]) -> Callable[P, T]:
    """``write``, run again when PostgreSQL broke a lock cycle by failing it.

    Two statements that lock some of the same rows, each in its own order, can wait
    on each other: a sender's marks and its lease renewal, or another sender's
    look at the suppression list. An ``UPDATE ... FROM unnest`` or one that reads
    rows through a bitmap promises no order. After ``deadlock_timeout`` the server
    fails one of them and rolls it back whole, so running it again is safe, and the
    other has gone on by then. ``write`` must be one transaction (or a read, then
    one), and its error must carry the psycopg error as its cause (``raise ...
    from exc``), as the transaction helpers' DigestErrors do.
    """

    @functools.wraps(write)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        for _ in range(_TRIES - 1):
            try:
                return write(*args, **kwargs)
            except DigestError as exc:
                if not isinstance(exc.__cause__, DeadlockDetected):
                    raise
        return write(*args, **kwargs)
    return call
