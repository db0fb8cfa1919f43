"""``VWPolicy``: the learned policy, a thin Policy over the VW mediator (`policies/vw/learner.py`).

Config apart from state (MABWiser style): :class:`VWPolicyConfig` is frozen and validated once; the
policy delegates every VW call to :class:`~policies.vw.learner.CbAdfLearner`.

The pmf is VW's own ``cb_explore_adf`` output, never recomputed. The only touch is a defensive
division by its sum: VW computes in float32, so its pmf sums to 1 only within ~1e-7; dividing by the
sum rescales every entry by the same factor (relative change < 1e-6), keeps exact zeros at zero and
never changes which arms may be drawn or their order. A pmf that is not finite, negative or sums to
<= 0 is a broken model (:class:`~offerbandit.errors.ModelError`), not something we patch.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from offerbandit.errors import InvalidInput, ModelError
from policies.types import ArmSet, DecisionContext, LearningEvent
from policies.vw.learner import CbAdfLearner, CbAdfOptions

__all__ = ["VWPolicy", "VWPolicyConfig", "finalise_pmf"]

_MAGIC = b"offerbandit-vw-policy/1\n"


@dataclass(frozen=True, slots=True)
class VWPolicyConfig(CbAdfOptions):
    """Exploration (``epsilon`` | ``softmax`` | ``squarecb`` | ``bag`` | ``cover``) and its parameters,
    (default ``squarecb``: in the synthetic world of ``tests/policies/test_policies_vw_policy.py`` it reached
    0.69-0.73 mean reward of 0.8 possible where epsilon 0.05 stalled at 0.35 and cover 3 at 0.37),
    feature interactions (namespace letters, see `policies/vw/features.py`), hash bits, learning rate
    and seed.

    ``epsilon`` is used by ``epsilon``, ``bag`` and ``cover``; ``softmax_lambda`` by ``softmax``;
    ``squarecb_gamma_scale`` by ``squarecb``. The fields are the mediator's `CbAdfOptions`, which
    validates them (InvalidInput naming the field).
    """

    def __post_init__(self) -> None:
        if isinstance(self.interactions, str):
            raise InvalidInput("interactions must be a sequence of namespace-letter strings", field="interactions")
        CbAdfOptions.__post_init__(self)

    def options(self) -> CbAdfOptions:
        return CbAdfOptions(**{f.name: getattr(self, f.name) for f in fields(CbAdfOptions)})

    def to_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["interactions"] = list(self.interactions)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> "VWPolicyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown VW policy parameter(s): {', '.join(unknown)}", field=unknown[0])
        return cls(**values)  # type: ignore[arg-type]


def finalise_pmf(raw: np.ndarray) -> np.ndarray:
    """VW's pmf as float64 summing to 1 (see the module docstring for what this may and may not do)."""
    pmf = np.asarray(raw, dtype=np.float64)
    total = pmf.sum()
    if not np.isfinite(total) or total <= 0.0 or (pmf < 0.0).any():
        raise ModelError(f"VW returned an invalid pmf (sum {total})")
    return pmf / total


class VWPolicy:
    """VW ``--cb_explore_adf`` over joint arms; learns online from logged events (cost = -reward)."""

    name = "vw"

    def __init__(self, config: VWPolicyConfig | None = None, *, _learner: CbAdfLearner | None = None) -> None:
        self.config = config or VWPolicyConfig()
        self._learner = _learner or CbAdfLearner(self.config.options())

    @property
    def params(self) -> Mapping[str, object]:
        return {"policy": self.name, **self.config.to_dict()}

    def pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        return finalise_pmf(self._learner.predict_pmf(context, arm_set))

    def pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        return [finalise_pmf(raw) for raw in self._learner.predict_pmf_batch(items)]

    def learn(self, events: Sequence[LearningEvent]) -> None:
        self._learner.learn(events)

    def save(self) -> bytes:
        header = json.dumps(self.config.to_dict(), sort_keys=True).encode()
        return _MAGIC + header + b"\n" + self._learner.save()

    @classmethod
    def load(cls, data: bytes) -> "VWPolicy":
        if not isinstance(data, (bytes, bytearray)) or not bytes(data).startswith(_MAGIC):
            raise ModelError("not a saved VW policy")
        header, newline, model = bytes(data)[len(_MAGIC):].partition(b"\n")
        if not newline:
            raise ModelError("saved VW policy is truncated")
        try:
            config = VWPolicyConfig.from_dict(json.loads(header))
        except (ValueError, TypeError, InvalidInput) as exc:
            raise ModelError(f"saved VW policy has a bad header: {exc}") from exc
        return cls(config, _learner=CbAdfLearner.from_bytes(config.options(), model))

    def close(self) -> None:
        self._learner.close()
