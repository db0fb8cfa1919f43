"""The one place where domain errors become gRPC status codes.

The table is read top to bottom; the first class that matches wins, so specific classes come first.
Anything unexpected is INTERNAL and logged with its traceback; the caller sees no internals.
"""
from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout

import grpc

from offerbandit.errors import AlreadyExists, InvalidInput, ModelError, NotFound, OfferBanditError, Overloaded, Unavailable

log = logging.getLogger("offerbandit.errors")

STATUS_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ModelError, grpc.StatusCode.UNAVAILABLE),
    (FutureTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (OfferBanditError, grpc.StatusCode.INTERNAL),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for cls, code in STATUS_TABLE:
        if isinstance(exc, cls):
            if code is grpc.StatusCode.INTERNAL:
                log.error("internal error", exc_info=exc)
                return code, "internal error; see the server log"
            return code, str(exc) or cls.__name__
    log.error("unexpected error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error; see the server log"


def abort_with(context: grpc.ServicerContext, exc: BaseException) -> None:
    """Abort the call with the mapped status (raises, as grpc's abort does)."""
    code, message = status_for(exc)
    context.abort(code, message)
