"""TOML text written by offerbandit, parseable by tomllib: the configuration stored beside each
policy version and a campaign's catalogue section (the demo's and the tests' simulated worlds).

Every string and key goes through :func:`toml_string`, so quotes, backslashes and control
characters in offer ids, features or parameters cannot break the document.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from policies.types import Offer
from service.config import CampaignConfig

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _escaped(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if char < " " or char == "\x7f":  # control characters TOML does not allow raw in a basic string
        return f"\\u{ord(char):04X}"
    return char


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (quoted, escaped)."""
    return '"' + "".join(map(_escaped, text)) + '"'


def toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value: object) -> str:
    """A scalar or a list of scalars as TOML; anything else is written as its string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    if isinstance(value, (list, tuple, frozenset, set)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(toml_value(v) for v in items) + "]"
    return toml_string(str(value))


def _table(name: str, values: Mapping[str, object]) -> list[str]:
    lines = [f"[{name}]"]
    lines += [f"{toml_string(str(k))} = {toml_value(v)}" for k, v in sorted(values.items()) if v is not None]
    return lines


def campaign_policy_toml(campaign: CampaignConfig, policy_params: Mapping[str, object]) -> str:
    rules = campaign.rules
    novelty = campaign.novelty
    lines = _table("campaign", {"name": campaign.name, "mode": campaign.mode, "policy": campaign.policy,
                                "aggregation": campaign.aggregation, "default_reward": campaign.default_reward,
                                "exploration_slice": campaign.exploration_slice})
    lines += [""] + _table("policy_params", dict(policy_params))
    lines += [""] + _table("novelty", {f: getattr(novelty, f) for f in novelty.__dataclass_fields__})
    lines += [""] + _table("rules.slot_hours", dict(rules.slot_hours))
    for name in ("caps", "quiet_hours", "suppressions"):
        for item in getattr(rules, name):
            lines += ["", f"[[rules.{name}]]"]
            lines += [f"{k} = {toml_value(getattr(item, k))}" for k in item.__dataclass_fields__]
    return "\n".join(lines) + "\n"


def catalog_toml(campaign: str, offers: Sequence[Offer], formats: Sequence[str], time_slots: Sequence[str],
                 extra: str = "") -> str:
    """The ``[campaigns.<campaign>]`` section serving exactly these offers, formats and time slots.

    ``extra`` is TOML text for the campaign table itself (e.g. ``reward_window_seconds = 3600``),
    placed before the offers.
    """
    table = f"campaigns.{toml_key(campaign)}"
    lines = [f"[{table}]", f"formats = {toml_value(list(formats))}", f"time_slots = {toml_value(list(time_slots))}",
             extra.strip()]
    for offer in offers:
        features = ", ".join(f"{toml_key(k)} = {toml_string(v)}" for k, v in sorted(offer.features.items()))
        lines.append(f"[[{table}.offers]]\nid = {toml_string(offer.id)}\nfeatures = {{ {features} }}")
    return "\n".join(line for line in lines if line) + "\n"
