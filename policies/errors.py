"""The project's one error tree. Every module raises these; `service/errors.py` maps them to gRPC.

    OfferBanditError
    ├── InvalidInput            bad request, config or data        -> INVALID_ARGUMENT
    │   └── SensitiveFeature    a deny-listed context key          -> INVALID_ARGUMENT
    ├── NotFound                unknown event id, campaign, version -> NOT_FOUND
    ├── Overloaded              queue or concurrency bound hit     -> RESOURCE_EXHAUSTED
    ├── PolicyUnavailable       no policy loaded / model broken    -> UNAVAILABLE
    └── ModelError              a model artefact cannot be used (corrupt, incompatible)
"""
from __future__ import annotations


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


class Overloaded(OfferBanditError):
    """Too much work in flight; retry later."""


class PolicyUnavailable(OfferBanditError):
    """No usable policy is loaded for the campaign."""


class ModelError(OfferBanditError):
    """A model artefact is corrupt or incompatible with this code."""
