"""One line, never a traceback, when the database fails under a read.

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
from typing import Any, TypeVar

import psycopg

from digest.errors import DigestError

T = TypeVar("T")


def _failed(exc: psycopg.Error) -> DigestError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
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
