"""The project's one error tree. Every package raises these; ``service/status.py`` maps them to gRPC
status codes (most specific first) and the CLI prints their message on one line.

    OfferBanditError
    ├── InvalidInput              bad request, config or data          -> INVALID_ARGUMENT
    │   ├── SensitiveFeature      a deny-listed context key            -> INVALID_ARGUMENT
    │   └── LogNotFound           no decision log where one was named (a wrong --data-dir)
    ├── NotFound                  unknown event id, campaign, version  -> NOT_FOUND
    ├── AlreadyExists             an event id reused for another request -> ALREADY_EXISTS
    ├── Overloaded                queue or concurrency bound hit       -> RESOURCE_EXHAUSTED
    ├── Unavailable               an expected, retryable fault         -> UNAVAILABLE
    │   ├── LogClosed             the decision log has been shut down
    │   ├── LogUnavailable        the log is busy, locked, full or failing (SQLite I/O)
    │   ├── AliasMoved            an alias moved since it was read (a lost compare-and-set; retry)
    │   └── PolicyUnavailable     no usable policy is loaded
    │       └── RegistryUnavailable   the MLflow store cannot be reached, opened or written
    ├── ModelError                a model artefact cannot be used      -> UNAVAILABLE
    └── ClientError               a call made with offerbandit.Client / AsyncClient failed
        ├── RpcInvalidArgument    INVALID_ARGUMENT (the server's message names the field)
        ├── RpcNotFound           NOT_FOUND (unknown event id or campaign)
        ├── RpcAlreadyExists      ALREADY_EXISTS (an event id reused for another request)
        ├── RpcUnauthenticated    UNAUTHENTICATED (no or a wrong bearer token)
        ├── RpcPermissionDenied   PERMISSION_DENIED (a token without the call's scope)
        ├── RpcResourceExhausted  RESOURCE_EXHAUSTED (overload, a message over the limit)
        ├── RpcDeadlineExceeded   DEADLINE_EXCEEDED (the call's timeout passed)
        ├── RpcUnavailable        UNAVAILABLE (still unavailable when the call's timeout ran out)
        ├── RpcUnimplemented      UNIMPLEMENTED (the server lacks the RPC, e.g. an older server)
        └── RpcInternal           INTERNAL, UNKNOWN, DATA_LOSS

The client's classes carry an ``Rpc`` prefix so they never clash with the server-side names above (a
``NotFound`` raised inside the server and an ``RpcNotFound`` received by a client are different events).
Each carries ``.code`` (the ``grpc.StatusCode``) and ``.details`` (the server's message) as attributes
-- not methods, as on ``grpc.Call`` -- and the original ``grpc.RpcError`` as ``__cause__``. A status
without a class of its own (``CANCELLED``, ``ABORTED``, ...) is raised as ``ClientError`` itself. This
module imports no gRPC: ``status`` names the code, the client (``offerbandit.client``) maps codes to classes.
"""
from __future__ import annotations

from pathlib import Path
import typing
from typing import Any, ClassVar

if typing.TYPE_CHECKING:
    import grpc

__all__ = [
    "AliasMoved",
    "AlreadyExists",
    "ClientError",
    "InvalidInput",
    "LogClosed",
    "LogNotFound",
    "LogUnavailable",
    "ModelError",
    "NotFound",
    "OfferBanditError",
    "Overloaded",
    "PolicyUnavailable",
    "RegistryUnavailable",
    "RpcAlreadyExists",
    "RpcDeadlineExceeded",
    "RpcInternal",
    "RpcInvalidArgument",
    "RpcNotFound",
    "RpcPermissionDenied",
    "RpcResourceExhausted",
    "RpcUnauthenticated",
    "RpcUnavailable",
    "RpcUnimplemented",
    "SensitiveFeature",
    "Unavailable",
]


class OfferBanditError(Exception):
    """Root of every error this project raises on purpose."""


class InvalidInput(OfferBanditError, ValueError):
    """The caller sent something we refuse; the message names the field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class SensitiveFeature(InvalidInput):
    """A context key on the sensitive deny-list (health, religion, ...)."""


class NotFound(OfferBanditError, KeyError):
    """An id the caller named does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LogNotFound(InvalidInput):
    """A command was pointed at a place that holds no decision log."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(f"no decision log at {path} (is --data-dir the server's data directory?)",
                         field="data-dir")
        self.path = path


class AlreadyExists(OfferBanditError):
    """An idempotency key (an ``event_id``) already names a different request; ``field`` names it."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class Overloaded(OfferBanditError):
    """Too much work in flight; retry later."""


class Unavailable(OfferBanditError):
    """An expected fault the caller may retry (a store down, a log closing)."""


class LogClosed(Unavailable):
    """The decision log has been shut down."""


class LogUnavailable(Unavailable):
    """The decision log cannot be written or read right now (busy, locked, disk full, I/O error);
    nothing of the failed operation was committed, so the caller may retry."""


class PolicyUnavailable(Unavailable):
    """No usable policy is loaded for the campaign."""


class RegistryUnavailable(PolicyUnavailable):
    """The MLflow store cannot be reached, opened or written."""


class AliasMoved(Unavailable):
    """A registry alias moved between reading it and setting it: the compare-and-set lost; retry."""


class ModelError(OfferBanditError):
    """A model artefact is corrupt or incompatible with this code."""


class ClientError(OfferBanditError):
    """A call made through ``offerbandit.Client`` or ``AsyncClient`` ended with a non-OK status.

    ``code`` is the ``grpc.StatusCode``, ``details`` the server's message; ``str(err)`` shows both.
    ``partial``: from ``decide_batch`` of a list split into several calls, the decisions of the calls
    before the failing one (those are committed); empty otherwise.
    """

    status: ClassVar[str] = ""  # the grpc.StatusCode name this class stands for ("" for the root)

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self.code = code
        self.details = details
        self.partial: tuple[Any, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:  # picklable although __init__ takes two arguments
        return (type(self), (self.code, self.details))


class RpcInvalidArgument(ClientError):
    """The server refused the request; ``details`` names the field (and the batch index)."""

    status = "INVALID_ARGUMENT"


class RpcNotFound(ClientError):
    """An event id (Reward, Activate, GetDecision) or campaign the server does not know."""

    status = "NOT_FOUND"


class RpcAlreadyExists(ClientError):
    """An event id already used for a different request (another user, campaign or candidate set)."""

    status = "ALREADY_EXISTS"


class RpcUnauthenticated(ClientError):
    """The server wants a bearer token and got none or a wrong one."""

    status = "UNAUTHENTICATED"


class RpcPermissionDenied(ClientError):
    """The token is valid but lacks the scope the call needs."""

    status = "PERMISSION_DENIED"


class RpcResourceExhausted(ClientError):
    """The server is overloaded or a message exceeds the transport limit; not retried automatically."""

    status = "RESOURCE_EXHAUSTED"


class RpcDeadlineExceeded(ClientError):
    """The call's timeout passed (also while waiting for an unreachable server to come back)."""

    status = "DEADLINE_EXCEEDED"


class RpcUnavailable(ClientError):
    """The server stayed unavailable after the client's retries within the call's timeout."""

    status = "UNAVAILABLE"


class RpcUnimplemented(ClientError):
    """The server (or this client's generated code) does not have the RPC."""

    status = "UNIMPLEMENTED"


class RpcInternal(ClientError):
    """The server failed unexpectedly (INTERNAL, UNKNOWN or DATA_LOSS); its log has the cause."""

    status = "INTERNAL"
