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
    │   └── PolicyUnavailable     no usable policy is loaded
    │       └── RegistryUnavailable   the MLflow store cannot be reached, opened or written
    │   └── AliasMoved            an alias moved since it was read (a lost compare-and-set; retry)
    └── ModelError                a model artefact cannot be used      -> UNAVAILABLE
"""
from __future__ import annotations

from pathlib import Path

__all__ = [
    "AliasMoved",
    "AlreadyExists",
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
