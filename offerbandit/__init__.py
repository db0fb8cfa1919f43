"""offerbandit: segment-of-one offer decisions with contextual bandits.

This package is the public Python surface. Importing it stays cheap: it loads neither MLflow,
VowpalWabbit nor numpy (the server, the learner and the offline evaluation live in their own
packages: ``service``, ``policies``, ``decision_log``, ``policy_registry``, ``offline_eval``), and the
client (``Client``, ``AsyncClient``, from ``offerbandit.client``) loads gRPC only when first used.
"""
import typing

from offerbandit.errors import (
    AlreadyExists,
    ClientError,
    InvalidInput,
    LogClosed,
    LogNotFound,
    LogUnavailable,
    ModelError,
    NotFound,
    OfferBanditError,
    Overloaded,
    PolicyUnavailable,
    RegistryUnavailable,
    RpcAlreadyExists,
    RpcDeadlineExceeded,
    RpcInternal,
    RpcInvalidArgument,
    RpcNotFound,
    RpcPermissionDenied,
    RpcResourceExhausted,
    RpcUnauthenticated,
    RpcUnavailable,
    RpcUnimplemented,
    SensitiveFeature,
    Unavailable,
)
from offerbandit.lazy import lazy_attributes as _lazy_attributes

if typing.TYPE_CHECKING:  # type checkers see the real classes; at run time they load on first use
    from offerbandit.client import AsyncClient, Client

__version__ = "0.2.0"

_LAZY = {"AsyncClient": "offerbandit.client", "Client": "offerbandit.client"}

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "Client",
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
    "__version__",
]

__getattr__, __dir__ = _lazy_attributes("offerbandit", globals(), _LAZY)
