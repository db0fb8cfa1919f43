"""Expected storage faults leave the log as `LogUnavailable`, on both backends.

Each backend says which of its errors are expected (``translate``: the error as a `LogUnavailable`, or the
error itself when it is a bug); `translating_faults` makes the decorator that applies it to a method,
plain or generator (streamed reads fail as they stream).
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["translating_faults"]

F = TypeVar("F", bound=Callable[..., Any])


def translating_faults(errors: tuple[type[BaseException], ...],
                       translate: Callable[[BaseException], BaseException]) -> Callable[[F], F]:
    """A decorator: an error in ``errors`` raised by the method leaves it as ``translate(error)``."""

    def decorate(function: F) -> F:
        if inspect.isgeneratorfunction(function):
            @functools.wraps(function)
            def stream(*args: Any, **kwargs: Any) -> Any:
                try:
                    yield from function(*args, **kwargs)
                except errors as exc:
                    fault = translate(exc)
                    if fault is exc:
                        raise
                    raise fault from exc
            return stream  # type: ignore[return-value]

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except errors as exc:
                fault = translate(exc)
                if fault is exc:
                    raise
                raise fault from exc
        return call  # type: ignore[return-value]

    return decorate
