"""offerbandit: segment-of-one offer decisions with contextual bandits.

This package is the public Python surface. Importing it stays cheap: it loads neither MLflow,
VowpalWabbit nor numpy (the server, the learner and the offline evaluation live in their own
packages: ``service``, ``policies``, ``decision_log``, ``policy_registry``, ``offline_eval``).
"""
from offerbandit.errors import (
    AlreadyExists,
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
    SensitiveFeature,
    Unavailable,
)

__version__ = "0.2.0"

__all__ = [
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
    "__version__",
]
