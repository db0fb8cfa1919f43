"""Policy names -> classes: ``make_policy(name, **params)`` and ``load_policy(name, data)``.

``double_buffer`` (VW only; other policies have no long model operations) has decisions score on a serving
workspace that learning and checkpoints never lock (`policies/vw/double_buffer.py`); `reload_like` loads
bytes as a policy of another's kind and buffering (a guard's rollback keeps the live model's shape).

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
from policies.vw.double_buffer import DoubleBuffer
from policies.vw.policy import VWPolicy, VWPolicyConfig


def _config_of(policy_class, config_class, params: dict[str, object]):  # noqa: ANN001, ANN202
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidInput(f"{policy_class.name} has no parameter {unknown[0]!r}", field=unknown[0])
    return config_class(**params)


def _with_config(policy_class, config_class) -> Callable[..., Policy]:
    def make(**params: object) -> Policy:
        return policy_class(_config_of(policy_class, config_class, params))
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


def make_policy(name: str, *, double_buffer: DoubleBuffer | None = None, **params: object) -> Policy:
    """A fresh policy called ``name`` configured by ``params``."""
    _check_name(name)
    if double_buffer is not None and POLICY_CLASSES[name] is VWPolicy:
        return VWPolicy(_config_of(VWPolicy, VWPolicyConfig, params), double_buffer=double_buffer)
    return _FACTORIES[name](**params)


def load_policy(name: str, data: bytes, *, double_buffer: DoubleBuffer | None = None) -> Policy:
    """Rebuild a policy saved with ``save()`` (raises ModelError for bytes that are not one)."""
    _check_name(name)
    if double_buffer is not None and POLICY_CLASSES[name] is VWPolicy:
        return VWPolicy.load(data, double_buffer=double_buffer)
    return POLICY_CLASSES[name].load(data)


def reload_like(policy: Policy, data: bytes) -> Policy:
    """``data`` (saved by a policy of ``policy``'s kind) loaded and buffered as ``policy`` is."""
    if isinstance(policy, VWPolicy):
        return type(policy).load(data, double_buffer=policy.double_buffer)
    return type(policy).load(data)
