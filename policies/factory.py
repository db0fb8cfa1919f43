"""Policy names -> classes: ``make_policy(name, **params)`` and ``load_policy(name, data)``.

``params`` are the fields of the policy's frozen config (``VWPolicyConfig``, ``BestSingleArmConfig``,
``PerSegmentGreedyConfig``); unknown names or fields raise :class:`~offerbandit.errors.InvalidInput`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from policies.baselines import (
    BestSingleArmConfig,
    BestSingleArmPolicy,
    PerSegmentGreedyConfig,
    PerSegmentGreedyPolicy,
    UniformPolicy,
)
from policies.contract import Policy
from offerbandit.errors import InvalidInput
from policies.vw.policy import VWPolicy, VWPolicyConfig


def _with_config(policy_class, config_class) -> Callable[..., Policy]:
    def make(**params: object) -> Policy:
        known = {f.name for f in fields(config_class)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidInput(f"{policy_class.name} has no parameter {unknown[0]!r}", field=unknown[0])
        return policy_class(config_class(**params))
    return make


def _uniform(**params: object) -> Policy:
    if params:
        raise InvalidInput(f"uniform has no parameter {sorted(params)[0]!r}", field=sorted(params)[0])
    return UniformPolicy()


POLICY_CLASSES: dict[str, type] = {
    "vw": VWPolicy,
    "uniform": UniformPolicy,
    "best_single_arm": BestSingleArmPolicy,
    "per_segment_greedy": PerSegmentGreedyPolicy,
}

_FACTORIES: dict[str, Callable[..., Policy]] = {
    "vw": _with_config(VWPolicy, VWPolicyConfig),
    "uniform": _uniform,
    "best_single_arm": _with_config(BestSingleArmPolicy, BestSingleArmConfig),
    "per_segment_greedy": _with_config(PerSegmentGreedyPolicy, PerSegmentGreedyConfig),
}


def policy_names() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def _check_name(name: str) -> None:
    if name not in _FACTORIES:
        raise InvalidInput(f"unknown policy {name!r}; known: {', '.join(_FACTORIES)}", field="policy")


def make_policy(name: str, **params: object) -> Policy:
    """A fresh policy called ``name`` configured by ``params``."""
    _check_name(name)
    return _FACTORIES[name](**params)


def load_policy(name: str, data: bytes) -> Policy:
    """Rebuild a policy saved with ``save()`` (raises ModelError for bytes that are not one)."""
    _check_name(name)
    return POLICY_CLASSES[name].load(data)
