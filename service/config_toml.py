"""The TOML text stored beside each policy version: the policy's configuration, readable by people
and parseable by tomllib (values are scalars or lists of scalars)."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping

from service.config import CampaignConfig


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    if isinstance(value, (list, tuple, frozenset, set)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(_value(v) for v in items) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string is a JSON string


def _table(name: str, values: Mapping[str, object]) -> list[str]:
    lines = [f"[{name}]"]
    lines += [f"{json.dumps(str(k))} = {_value(v)}" for k, v in sorted(values.items()) if v is not None]
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
            lines += [f"{k} = {_value(getattr(item, k))}" for k in item.__dataclass_fields__]
    return "\n".join(lines) + "\n"
