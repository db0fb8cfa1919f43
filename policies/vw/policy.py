"""``VWPolicy``: the learned policy, a thin Policy over the VW mediator (`policies/vw/learner.py`).

Config apart from state (MABWiser style): :class:`VWPolicyConfig` is frozen and validated once; the
policy delegates every VW call to :class:`~policies.vw.learner.CbAdfLearner`.

With ``personal_model = "match"`` (the default) the pmf is VW's own ``cb_explore_adf`` output, never
recomputed. The only touch is a defensive division by its sum: VW computes in float32, so its pmf sums to 1
only within ~1e-7; dividing by the sum rescales every entry by the same factor (relative change < 1e-6),
keeps exact zeros at zero and never changes which arms may be drawn or their order. A pmf that is not
finite, negative or sums to <= 0 is a broken model (:class:`~offerbandit.errors.ModelError`), not something
we patch.

With ``personal_model = "posterior"`` VW is the *population* model: it sees and learns the request context
only (a decision's customer features are left out of its lines), and the pmf is `policies.personal`'s
per-customer posterior over VW's predicted rewards, from the customer features the decision logged.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from offerbandit.errors import InvalidInput, ModelError
from policies import personal
from policies.personal import PersonalModel, PersonalPosterior
from policies.types import ArmSet, CustomerFeatures, DecisionContext, LearningEvent
from policies.vw.double_buffer import DoubleBuffer, DoubleBufferedLearner
from policies.vw.features import check_context
from policies.vw.learner import CbAdfLearner, CbAdfOptions

__all__ = ["VWPolicy", "VWPolicyConfig", "finalise_pmf"]

_MAGIC = b"offerbandit-vw-policy/1\n"
#: how a policy uses a decision's customer features: VW's match namespace, or a per-customer posterior
PERSONAL_MODELS = ("match", "posterior")
_NO_CUSTOMER = CustomerFeatures()


def _context_only(context: DecisionContext) -> DecisionContext:
    """The decision as the population model sees it in posterior mode: without its customer features."""
    return context if context.customer is None else replace(context, customer=None)


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

    ``personal_model`` is ``match`` (customer features as VW's ``m`` namespace) or ``posterior`` (VW models the
    population from the context; `policies.personal` fits each customer on top, with the ``personal_*``
    settings of :class:`~policies.personal.PersonalPosterior`).
    """

    personal_model: str = "match"
    personal_prior_sd: float = personal.DEFAULT_PRIOR_SD
    personal_intercept_sd: float = personal.DEFAULT_INTERCEPT_SD
    personal_ucb: float = personal.DEFAULT_UCB
    personal_gamma: float = personal.DEFAULT_GAMMA
    personal_steps: int = personal.DEFAULT_STEPS
    personal_population_weight: float = personal.DEFAULT_POPULATION_WEIGHT
    personal_rate_floor: float = personal.DEFAULT_RATE_FLOOR

    def __post_init__(self) -> None:
        if isinstance(self.interactions, str):
            raise InvalidInput("interactions must be a sequence of namespace-letter strings", field="interactions")
        CbAdfOptions.__post_init__(self)
        if self.personal_model not in PERSONAL_MODELS:
            raise InvalidInput(f"personal_model must be one of {', '.join(PERSONAL_MODELS)}, got "
                               f"{self.personal_model!r}", field="personal_model")
        self.posterior()

    def posterior(self) -> PersonalPosterior:
        """The per-customer model's settings (validated, InvalidInput naming the field)."""
        return PersonalPosterior(prior_sd=self.personal_prior_sd, intercept_sd=self.personal_intercept_sd,
                                 ucb=self.personal_ucb, gamma=self.personal_gamma, steps=self.personal_steps,
                                 population_weight=self.personal_population_weight,
                                 rate_floor=self.personal_rate_floor)

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
    """VW ``--cb_explore_adf`` over joint arms; learns online from logged events (cost = -reward).

    With ``double_buffer`` (see `policies/vw/double_buffer.py`) decisions score on a serving workspace
    that a checkpoint never locks; what they see catches up at each publish (every so many events or
    seconds, and at every ``save``). Without it (the default) one workspace serves and learns.
    """

    name = "vw"

    def __init__(self, config: VWPolicyConfig | None = None, *, double_buffer: DoubleBuffer | None = None,
                 _learner: CbAdfLearner | None = None, _model: bytes | None = None) -> None:
        self.config = config or VWPolicyConfig()
        self._buffers: DoubleBufferedLearner | None = None
        if double_buffer is not None:
            if _learner is not None:
                raise ValueError("a double-buffered policy builds its own learners")
            self._buffers = DoubleBufferedLearner(self.config.options(), double_buffer, model=_model)
            self._learner = self._buffers.learning
        elif _model is not None:
            self._learner = CbAdfLearner.from_bytes(self.config.options(), _model)
        else:
            self._learner = _learner or CbAdfLearner(self.config.options())
        self._scorer: CbAdfLearner | DoubleBufferedLearner = self._buffers or self._learner
        #: the per-customer posterior over VW's predictions (posterior mode), which remembers arm-set layouts
        self._posterior = (PersonalModel(self.config.posterior()) if self.config.personal_model == "posterior"
                           else None)

    @property
    def params(self) -> Mapping[str, object]:
        return {"policy": self.name, **self.config.to_dict()}

    @property
    def double_buffer(self) -> DoubleBuffer | None:
        return None if self._buffers is None else self._buffers.settings

    def _personal(self, context: DecisionContext, arm_set: ArmSet, costs: np.ndarray) -> np.ndarray:
        """The posterior pmf from VW's predicted costs (in [-1, 0]: rewards scaled into [0, 1], negated)."""
        if not np.isfinite(costs).all():
            raise ModelError("VW predicted a cost that is not finite")
        assert self._posterior is not None
        return self._posterior.pmf(arm_set, -costs, context.customer or _NO_CUSTOMER)

    def _population(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[tuple[DecisionContext, ArmSet]]:
        """What VW sees in posterior mode: the decisions without their customer features."""
        for context, _ in items:
            check_context(context)
        return [(_context_only(context), arm_set) for context, arm_set in items]

    def pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        if self._posterior is not None:
            return self.pmf_batch([(context, arm_set)])[0]
        return finalise_pmf(self._scorer.predict_pmf(context, arm_set))

    def pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        if self._posterior is not None:
            costs = self._scorer.predict_costs_batch(self._population(items))
            return [self._personal(context, arm_set, cost) for (context, arm_set), cost in zip(items, costs)]
        return [finalise_pmf(raw) for raw in self._scorer.predict_pmf_batch(items)]

    def reference_pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """The learning workspace's pmf from freshly built VW text lines, bypassing the parsed-example
        caches :meth:`pmf` and :meth:`pmf_batch` share (the slow path the conformance battery checks
        them against; the same as :meth:`pmf` unless double-buffered and unpublished)."""
        if self._posterior is not None:
            (population, _), = self._population([(context, arm_set)])
            return self._personal(context, arm_set, self._learner.predict_costs_uncached(population, arm_set))
        return finalise_pmf(self._learner.predict_pmf_uncached(context, arm_set))

    def learned_pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        """pmfs of everything learned so far, published or not (what a guard probes after an update);
        the same as :meth:`pmf_batch` unless double-buffered.

        In posterior mode these are VW's own pmfs on the decisions without their customer features: the model
        a guard protects is the population model, and the posterior's pmf is uniform, rightly, for a cold
        customer whenever VW puts every arm under the floor (the flattening a guard takes for a broken VW)."""
        if self._posterior is not None:
            items = self._population(items)
        return [finalise_pmf(raw) for raw in self._learner.predict_pmf_batch(items)]

    def learn(self, events: Sequence[LearningEvent]) -> None:
        if self._posterior is not None:
            events = [event if event.context.customer is None else replace(event, context=_context_only(event.context))
                      for event in events]
        (self._buffers or self._learner).learn(events)

    def publish(self) -> None:
        """Make decisions score on everything learned so far (a no-op unless double-buffered)."""
        if self._buffers is not None:
            self._buffers.publish()

    def _header(self) -> bytes:
        return _MAGIC + json.dumps(self.config.to_dict(), sort_keys=True).encode() + b"\n"

    def save(self) -> bytes:
        """The policy's bytes. Double-buffered, this holds only the learning workspace's lock (decisions
        go on) and publishes the saved model, so the policy then scores exactly like ``load`` of them."""
        return self._header() + (self._buffers or self._learner).save()

    @classmethod
    def load(cls, data: bytes, *, double_buffer: DoubleBuffer | None = None) -> "VWPolicy":
        if not isinstance(data, (bytes, bytearray)) or not bytes(data).startswith(_MAGIC):
            raise ModelError("not a saved VW policy")
        header, newline, model = bytes(data)[len(_MAGIC):].partition(b"\n")
        if not newline:
            raise ModelError("saved VW policy is truncated")
        try:
            config = VWPolicyConfig.from_dict(json.loads(header))
        except (ValueError, TypeError, InvalidInput) as exc:
            raise ModelError(f"saved VW policy has a bad header: {exc}") from exc
        return cls(config, double_buffer=double_buffer, _model=model)

    def close(self) -> None:
        (self._buffers or self._learner).close()
