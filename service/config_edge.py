"""The configuration of the gRPC edge: request size limits and the privacy rules applied to every
request (sensitive keys after normalisation, personal data in values). ``service.config`` re-exports them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from service.privacy import PII_CHECKS, KeyMatcher, ValueScanner, key_tokens

__all__ = ["DEFAULT_SENSITIVE_KEYS", "MIN_KEY_LENGTH", "LimitsConfig", "PrivacyConfig"]


def _require(condition: bool, message: str, field_name: str) -> None:
    if not condition:
        raise InvalidInput(message, field=field_name)

# The GDPR's special categories (Art. 9) as words; matched as whole tokens after normalisation
# (service/privacy.py), so `health` also refuses `healthStatus` and `mental_health`.
DEFAULT_SENSITIVE_KEYS = (
    "health", "medical", "medication", "diagnosis", "disease", "illness", "prescription", "pregnancy",
    "pregnant", "disability", "religion", "religious", "ethnicity", "ethnic", "race", "racial",
    "sexual_orientation", "sexuality", "sex_life", "political_views", "political", "trade_union", "genetic",
    "biometric",
)
MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class LimitsConfig:
    """Size limits on one request; anything over them is INVALID_ARGUMENT naming the field."""

    max_offers: int = 2000
    max_formats: int = 16
    max_time_slots: int = 24
    max_joint_arms: int = 4096
    max_context_keys: int = 64
    max_offer_features: int = 32
    max_string_length: int = 256
    max_batch: int = 1000
    # |numeric context value| beyond this is refused (epoch seconds need about 2e9: raise it for them).
    max_abs_numeric: float = 1e6

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if name != "max_abs_numeric":
                check_scalar(getattr(self, name), f"limits.{name}", int, low=1)
        object.__setattr__(self, "max_abs_numeric",
                           check_scalar(self.max_abs_numeric, "limits.max_abs_numeric", low=0.0, low_open=True))


def _compiled(patterns: tuple[str, ...], where: str) -> None:
    for i, pattern in enumerate(patterns):
        _require(isinstance(pattern, str) and pattern != "", f"{where}[{i}] must be a non-empty string",
                 f"{where}[{i}]")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidInput(f"{where}[{i}] is not a regular expression: {exc}", field=f"{where}[{i}]") from exc


@dataclass(frozen=True)
class PrivacyConfig:
    """What the edge refuses (service/privacy.py): sensitive keys of context, numeric and offer
    features, and personal contact data in their values."""

    # Deny-listed words, matched as whole tokens of the normalised key.
    sensitive_context_keys: tuple[str, ...] = DEFAULT_SENSITIVE_KEYS
    # Regular expressions searched in the normalised key (tokens joined by "_"), e.g. "health" anywhere.
    sensitive_key_patterns: tuple[str, ...] = ()
    # Built-in detectors of personal data in values: payment_card, email, phone ([] turns them off).
    pii_checks: tuple[str, ...] = tuple(PII_CHECKS)
    # More regular expressions that mark a value as personal data (searched after NFKC).
    pii_patterns: tuple[str, ...] = ()
    # Key for hashing user ids (at least 16 characters). Empty: $OFFERBANDIT_USER_HASH_KEY, else a key
    # generated once and kept in <data-dir>/secret.key.
    user_hash_key: str = ""
    # Older user-hash keys, newest first, still looked up (caps, history, erase, user-data) after a rotation
    # until the rows they hashed aged out; the oldest listed one also seeds draws and holdout assignment.
    previous_user_hash_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for i, word in enumerate(self.sensitive_context_keys):
            _require(isinstance(word, str) and bool(key_tokens(word)),
                     f"privacy.sensitive_context_keys[{i}] must be a word with letters or digits",
                     f"privacy.sensitive_context_keys[{i}]")
        _compiled(self.sensitive_key_patterns, "privacy.sensitive_key_patterns")
        _compiled(self.pii_patterns, "privacy.pii_patterns")
        for i, name in enumerate(self.pii_checks):
            _require(name in PII_CHECKS, f"privacy.pii_checks[{i}] must be one of {', '.join(PII_CHECKS)}",
                     f"privacy.pii_checks[{i}]")
        _require(isinstance(self.user_hash_key, str), "privacy.user_hash_key must be a string",
                 "privacy.user_hash_key")
        _require(self.user_hash_key == "" or len(self.user_hash_key) >= MIN_KEY_LENGTH,
                 f"privacy.user_hash_key must have at least {MIN_KEY_LENGTH} characters "
                 f"(it has {len(self.user_hash_key)})", "privacy.user_hash_key")

    @cached_property
    def key_matcher(self) -> KeyMatcher:
        """Matches the sensitive keys (cached per configuration)."""
        return KeyMatcher(self.sensitive_context_keys, self.sensitive_key_patterns)

    @cached_property
    def value_scanner(self) -> ValueScanner:
        """Finds personal data in values (cached per configuration)."""
        return ValueScanner(self.pii_checks, self.pii_patterns)

