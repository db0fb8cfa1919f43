"""Checks of the names and values the registry stores: campaigns, aliases, versions, audit notes,
config TOML and metrics. Each refuses with ``InvalidInput`` naming the argument."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from types import MappingProxyType

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput, OfferBanditError

__all__ = [
    "NAME_PATTERN",
    "check_audit",
    "check_optional_number",
    "check_toml",
    "check_version",
    "checked_metrics",
    "validate_alias",
    "validate_campaign",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ALIAS_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_METRIC_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")


def validate_campaign(campaign: object) -> None:
    """A campaign name usable in a registered model name (InvalidInput naming ``campaign``)."""
    if not isinstance(campaign, str) or not NAME_PATTERN.match(campaign):
        raise InvalidInput(
            f"campaign {campaign!r} must be 1-100 letters, digits, '_', '.' or '-'", field="campaign"
        )


def validate_alias(alias: object) -> None:
    """An alias MLflow accepts (not ``latest``, not ``v<n>``)."""
    if not isinstance(alias, str) or not _ALIAS_PATTERN.match(alias) or alias == "latest" or re.fullmatch(
        r"v\d+", alias
    ):
        raise InvalidInput(f"alias {alias!r} is not a valid registry alias", field="alias")


def check_version(version: object) -> str:
    """A registry version number as MLflow spells it (``"3"``); an int is accepted."""
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.isdigit():
        raise InvalidInput(f"version must be a registry version number, got {version!r}", field="version")
    return version


def check_audit(who: object, why: object) -> None:
    if not isinstance(who, str) or not who.strip():
        raise InvalidInput("who must name the person or process making the change", field="who")
    if not isinstance(why, str) or not why.strip():
        raise InvalidInput("why must give a reason for the change", field="why")


def check_optional_number(value: object, name: str) -> None:
    """None, or a finite number."""
    if value is not None:
        check_scalar(value, name, float)


def check_toml(text: object, error: type[OfferBanditError]) -> None:
    """``config_toml`` must parse: InvalidInput when publishing, ModelError when loading."""
    def fail(message: str) -> OfferBanditError:
        return InvalidInput(message, field="config_toml") if error is InvalidInput else error(message)

    if not isinstance(text, str):
        raise fail("config_toml must be a string")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"config_toml does not parse as TOML: {exc}") from exc


def checked_metrics(metrics: object) -> Mapping[str, float]:
    """A read-only copy of ``name -> finite number``; any fault is reported on the field ``metrics``."""
    if not isinstance(metrics, Mapping):
        raise InvalidInput("metrics must be a mapping of name to number", field="metrics")
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not _METRIC_KEY_PATTERN.match(key):
            raise InvalidInput(f"metric name {key!r} is not valid", field="metrics")
        try:
            clean[key] = float(check_scalar(value, f"metric {key!r}", float))
        except InvalidInput as exc:
            raise InvalidInput(str(exc), field="metrics") from None
    return MappingProxyType(clean)
