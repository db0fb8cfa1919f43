"""The ``--cb_explore_adf`` mediator (after coba's ``VowpalMediator``): pmf, learn, save/load, behind a lock.

:class:`CbAdfOptions` says how the workspace is built; :class:`CbAdfLearner` owns one workspace, its
arm-example cache and the lock around every VW call (a workspace is not thread-safe). Only the chosen
arm of a learned event is labelled, ``cost:probability`` with the cost of `features.cost_from_reward`
(the reward scaled by the event's ``reward_range`` into [-1, 0]).

Every workspace is built with :data:`LEARN_ARGS` (``--no_predict``): with ``--cb_type mtr``, cb_adf's
learn otherwise predicts over every action before its one-action update, only to hand that prediction
back -- and ``workspace.learn`` already predicted once before it (the exploration reductions do not
return predictions from learn). The update never reads it (VW 9.11 ``cb_adf::learn_mtr<false>`` skips
just that pass; cover predicts for itself when its base does not), so the learned weights are the same:
``tests/policies/test_vw_learn_speed.py`` checks the saved bytes and held-out pmfs are identical with
and without it, for every exploration and cb_type. The option is not stored in a model file (VW keeps
only ``.keep()`` options), so models load the same either way.

Where the update reads nothing but the chosen arm (``mtr`` with any exploration but ``cover``, which
learns from every arm's score; ``ips``/``dr`` label every arm), the other arms of a learned event are
stood in for by featureless examples (:data:`PAD_LINE`, parsed once per workspace, up to
:data:`PAD_ARMS` of them): the number of actions and the chosen one's position stay (mtr weighs its update
by events/actions), the prediction pass ``workspace.learn`` makes first touches no weight. Same bytes,
same pmfs (``tests/policies/test_vw_learn_speed.py``).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput, ModelError
from policies.types import ArmSet, DecisionContext, LearningEvent
from policies.vw.features import (
    DEFAULT_INTERACTIONS,
    arm_suffix,
    match_parts,
    check_context,
    check_interactions,
    cost_from_reward,
    offer_parts,
    shared_line,
)
from policies.vw.event_checks import check_event, check_event_arms, check_event_fields, check_event_numbers
from policies.vw.workspace import (DEFAULT_ARM_CACHE_BYTES, ArmExampleCache, learn_multi, load_workspace,
                                   new_workspace, parse_native_example, predict_multi, save_workspace,
                                   save_workspace_in_child)

__all__ = ["CbAdfLearner", "CbAdfOptions", "EXPLORATIONS", "KNOWN_ARM_SETS", "LEARN_ARGS", "PAD_ARMS",
           "PAD_LINE", "RetiredLearner", "check_event"]

#: VW options of a learner's workspace that change how fast it learns, never what (see the module docstring).
LEARN_ARGS: tuple[str, ...] = ("--no_predict",)
#: The stand-in for an unchosen arm while learning: one namespace, no features.
PAD_LINE = "|f"
#: Arm sets up to this size learn through stand-ins (~33 KB of VW memory each, parsed once); longer
#: ones learn from their full arm examples (the same update, slower).
PAD_ARMS = 512

EXPLORATIONS: tuple[str, ...] = ("epsilon", "softmax", "squarecb", "bag", "cover")


class RetiredLearner(ModelError):
    """A call reached a learner after :meth:`CbAdfLearner.close` (a double-buffered policy retries it on
    the workspace that replaced this one)."""


@dataclass(frozen=True, slots=True)
class CbAdfOptions:
    """How to build the ``--cb_explore_adf`` workspace (validated by the policy config)."""

    exploration: str = "squarecb"
    epsilon: float = 0.05
    softmax_lambda: float = 10.0
    squarecb_gamma_scale: float = 10.0
    bag_size: int = 5
    cover_size: int = 5
    interactions: tuple[str, ...] = DEFAULT_INTERACTIONS
    bits: int = 24
    learning_rate: float = 0.5
    seed: int = 0
    cb_type: str = "mtr"

    def __post_init__(self) -> None:
        object.__setattr__(self, "interactions", check_interactions(self.interactions))
        if self.exploration not in EXPLORATIONS:
            raise InvalidInput(
                f"exploration must be one of {', '.join(EXPLORATIONS)}, got {self.exploration!r}",
                field="exploration",
            )
        check_scalar(self.epsilon, "epsilon", low=0.0, high=1.0)
        check_scalar(self.softmax_lambda, "softmax_lambda", low=0.0, low_open=True)
        check_scalar(self.squarecb_gamma_scale, "squarecb_gamma_scale", low=0.0, low_open=True)
        check_scalar(self.learning_rate, "learning_rate", low=0.0, low_open=True)
        check_scalar(self.bag_size, "bag_size", int, low=1, high=100)
        check_scalar(self.cover_size, "cover_size", int, low=1, high=100)
        check_scalar(self.bits, "bits", int, low=18, high=30)
        check_scalar(self.seed, "seed", int, low=0, high=2**31 - 1)
        if self.cb_type not in ("mtr", "ips", "dr"):
            raise InvalidInput(f"cb_type must be mtr, ips or dr, got {self.cb_type!r}", field="cb_type")

    def exploration_args(self) -> list[str]:
        if self.exploration == "epsilon":
            return ["--epsilon", repr(float(self.epsilon))]
        if self.exploration == "softmax":
            return ["--softmax", "--lambda", repr(float(self.softmax_lambda))]
        if self.exploration == "squarecb":
            return ["--squarecb", "--gamma_scale", repr(float(self.squarecb_gamma_scale))]
        if self.exploration == "bag":
            return ["--bag", str(int(self.bag_size)), "--epsilon", repr(float(self.epsilon))]
        return ["--cover", str(int(self.cover_size)), "--epsilon", repr(float(self.epsilon))]

    def args(self, *, with_seed: bool = True) -> list[str]:
        args = ["--cb_explore_adf", "--cb_type", self.cb_type, *self.exploration_args()]
        args += ["-b", str(int(self.bits)), "-l", repr(float(self.learning_rate)), "--quiet"]
        for interaction in self.interactions:
            args += ["--interactions", interaction]
        if with_seed:  # a saved model carries its own advanced seed; VW refuses a second one
            args += ["--random_seed", str(int(self.seed))]
        return args


@dataclass(slots=True)
class _KnownArmSet:
    """The parsed arm examples of one ArmSet object (held, so its ``id`` cannot be reused meanwhile)
    and its offers' text parts (for the labelled copy of a chosen arm)."""

    arm_set: ArmSet
    examples: list[Any]
    parts: dict[str, str]
    epoch: int
    lines: dict[int, str] = field(default_factory=dict)

    def line(self, index: int) -> str:
        line = self.lines.get(index)
        if line is None:
            arm = self.arm_set.arms[index]
            line = self.lines[index] = self.parts[arm.offer_id] + arm_suffix(arm)
        return line


#: How many distinct ArmSet objects a learner remembers (most recently used kept).
KNOWN_ARM_SETS = 256


def _fresh_lines(context: DecisionContext, arm_set: ArmSet) -> list[str]:
    """One decision's VW text lines built from scratch (no cache)."""
    check_context(context)
    parts = offer_parts(arm_set)
    matches = match_parts(arm_set, context.customer) or [""] * len(arm_set.arms)
    return [shared_line(context), *(parts[arm.offer_id] + arm_suffix(arm) + match
                                    for arm, match in zip(arm_set.arms, matches))]


class CbAdfLearner:
    """A ``--cb_explore_adf`` workspace with its feature mapping, arm cache and lock.

    All methods are thread-safe (one lock around every VW call: a workspace is not thread-safe).
    """

    def __init__(self, options: CbAdfOptions = CbAdfOptions(), *, arm_cache_bytes: int = DEFAULT_ARM_CACHE_BYTES,
                 model: bytes | None = None, sparse: bool = False) -> None:
        self.options = options
        #: VW's ``--sparse_weights``: the weights in a map of those used, not a 2^bits table, so ``save``
        #: takes well under a millisecond instead of walking the table (~200 ms at -b 24, holding the GIL);
        #: predictions and learning are the same (a sparse model loaded dense predicts bit for bit alike),
        #: each call ~2x slower. Not part of the model: its bytes load either way.
        self.sparse = bool(sparse)
        self._lock = threading.Lock()
        if model is None:
            self._vw = new_workspace([*options.args(), *LEARN_ARGS, *self._storage(), "--save_resume"])
        else:
            self._vw = load_workspace([*options.args(with_seed=False), *LEARN_ARGS, *self._storage()], model)
        self._label_type = self._vw.get_label_type().value
        self._pad = options.cb_type == "mtr" and options.exploration != "cover"
        self._pads: list[Any] = []  # stand-ins for unchosen arms (parsed by this workspace)
        self._cache = ArmExampleCache(self._parse_one, arm_cache_bytes)
        self._known: OrderedDict[int, _KnownArmSet] = OrderedDict()
        self._closed = False

    def _storage(self) -> list[str]:
        return ["--sparse_weights"] if self.sparse else []

    def _parse_one(self, line: str) -> Any:  # call with the lock held
        return parse_native_example(self._vw, line, self._label_type)

    def _known_arm_set(self, arm_set: ArmSet) -> _KnownArmSet:  # call with the lock held
        """The parsed arms of ``arm_set``: one dict lookup when this very object was seen before (records
        are immutable), else validated, built from the per-arm cache and remembered."""
        known = self._known.get(id(arm_set))
        if known is not None and known.arm_set is arm_set and known.epoch == self._cache.epoch:
            self._known.move_to_end(id(arm_set))
            return known
        parts = offer_parts(arm_set, self._cache.offer_parts)
        examples = self._cache.examples(arm_set, parts)
        if len({id(example) for example in examples}) != len(examples):
            raise InvalidInput("arm_set contains the same joint arm twice", field="arm_set.arms")
        known = _KnownArmSet(arm_set, examples, parts, self._cache.epoch)
        self._known[id(arm_set)] = known
        while len(self._known) > KNOWN_ARM_SETS:
            self._known.popitem(last=False)
        return known

    def _is_known(self, arm_set: ArmSet) -> bool:  # call with the lock held
        known = self._known.get(id(arm_set))
        return known is not None and known.arm_set is arm_set

    def _examples(self, context: DecisionContext, arm_set: ArmSet, chosen: int | None = None,
                  label: str = "") -> list[Any]:
        check_context(context)
        known = self._known_arm_set(arm_set)
        examples = [self._parse_one(shared_line(context)), *known.examples]
        matches = match_parts(arm_set, context.customer)
        if matches is not None:  # this customer's counts for each arm: those arms parsed afresh
            for index, part in enumerate(matches):
                if part and index != chosen:
                    examples[index + 1] = self._parse_one(known.line(index) + part)
        if chosen is not None:  # only the chosen arm carries a label: a fresh example, not the cached one
            examples[chosen + 1] = self._parse_one(f"{label} {known.line(chosen)}"
                                                   f"{matches[chosen] if matches is not None else ''}")
        return examples

    def _learn_examples(self, context: DecisionContext, arm_set: ArmSet, chosen: int, label: str) -> list[Any]:
        """What one event is learned from: :meth:`_examples`, or with stand-ins for the unchosen arms."""
        n_arms = len(arm_set.arms)
        if not self._pad or n_arms > PAD_ARMS:
            return self._examples(context, arm_set, chosen, label)
        check_context(context)
        line = self._known_arm_set(arm_set).line(chosen)  # validated (and duplicate arms refused) as ever
        if context.customer is not None:
            line += match_parts(arm_set, context.customer)[chosen]
        pads = self._pads
        while len(pads) < n_arms:
            pads.append(self._parse_one(PAD_LINE))
        return [self._parse_one(shared_line(context)), *pads[:chosen], self._parse_one(f"{label} {line}"),
                *pads[chosen + 1:n_arms]]

    def _pmf_locked(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        self._check_open()
        return self._predict_locked(self._examples(context, arm_set), len(arm_set.arms))

    def _predict_locked(self, examples: list[Any], n_arms: int) -> np.ndarray:
        pmf = np.array(predict_multi(self._vw, examples), dtype=np.float64)
        if pmf.shape != (n_arms,):
            raise ModelError(f"VW returned {pmf.shape[0]} probabilities for {n_arms} arms")
        return pmf

    def _costs_locked(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """The cost VW's regression predicts for each arm (its score before exploration), in arm order: the
        arm examples' partial predictions, which the predict that forms the pmf leaves on them."""
        self._check_open()
        return self._costs_of_locked(self._examples(context, arm_set), len(arm_set.arms))

    def _costs_of_locked(self, examples: list[Any], n_arms: int) -> np.ndarray:
        self._predict_locked(examples, n_arms)
        return np.array([example.get_partial_prediction() for example in examples[1:]], dtype=np.float64)

    def _check_open(self) -> None:
        if self._closed:
            raise RetiredLearner("this learner's workspace was closed")

    def predict_pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """VW's pmf over ``arm_set.arms`` in arm order, as float64 (VW computes in float32)."""
        with self._lock:
            return self._pmf_locked(context, arm_set)

    def predict_pmf_uncached(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """The same pmf from freshly built text lines (the slow path; a reference for tests and bench)."""
        lines = _fresh_lines(context, arm_set)
        with self._lock:
            self._check_open()
            return np.asarray(self._vw.predict(lines), dtype=np.float64)

    def predict_pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        """Many pmfs under one lock acquisition."""
        with self._lock:
            return [self._pmf_locked(context, arm_set) for context, arm_set in items]

    def predict_costs_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        """Each decision's predicted cost per arm (see :meth:`_costs_locked`), under one lock acquisition."""
        with self._lock:
            return [self._costs_locked(context, arm_set) for context, arm_set in items]

    def predict_costs_uncached(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """The same costs from freshly built and parsed text lines (the slow path; a reference for tests)."""
        lines = _fresh_lines(context, arm_set)
        with self._lock:
            self._check_open()
            return self._costs_of_locked([self._parse_one(line) for line in lines], len(arm_set.arms))

    def learn(self, events: Iterable[LearningEvent]) -> None:
        """Learn each event in order; only the chosen arm is labelled ``cost:probability``.

        Every event is validated before any is learned (a bad batch changes nothing), except a
        duplicate arm, which is found while building examples. An arm set this learner has seen (the
        same ArmSet object) is not validated arm by arm again."""
        events = list(events)
        with self._lock:
            self._check_open()
            for index, event in enumerate(events):
                check_event_fields(event, index)
                if not self._is_known(event.arm_set):
                    check_event_arms(event, index)
                check_event_numbers(event, index)
            vw = self._vw
            for event in events:
                label = f"0:{cost_from_reward(event.reward, event.reward_range)!r}:{float(event.probability)!r}"
                learn_multi(vw, self._learn_examples(event.context, event.arm_set, event.chosen, label))

    def save(self) -> bytes:
        """The model with its learning state (``--save_resume``): online learning continues identically."""
        with self._lock:
            self._check_open()
            return save_workspace(self._vw)

    def save_in_child(self) -> bytes:
        """:meth:`save`'s bytes, serialised by a forked child: this learner's lock and the GIL are held only
        across the fork, so decisions and learning go on during the serialisation (see
        `workspace.save_workspace_in_child`)."""
        with self._lock:
            self._check_open()
            wait = save_workspace_in_child(self._vw)
        return wait()

    def load(self, data: bytes) -> None:
        """Replace this workspace's model by ``data`` (from :meth:`save` or a VW model file)."""
        workspace = load_workspace([*self.options.args(with_seed=False), *LEARN_ARGS, *self._storage()], data)
        with self._lock:
            self._check_open()
            old, self._vw = self._vw, workspace
            self._label_type = workspace.get_label_type().value
            self._pads = []
            self._cache = ArmExampleCache(self._parse_one, self._cache.max_bytes)
            self._known.clear()
        old.finish()

    @classmethod
    def from_bytes(cls, options: CbAdfOptions, data: bytes) -> "CbAdfLearner":
        return cls(options, model=data)

    @property
    def cached_arms(self) -> int:
        return len(self._cache)

    def known_arm_sets(self) -> list[ArmSet]:
        """The ArmSet objects this learner has parsed examples for, least recently used first."""
        with self._lock:
            return [known.arm_set for known in self._known.values()]

    def warm(self, arm_sets: Iterable[ArmSet]) -> int:
        """Parse and remember the arm examples of ``arm_sets`` now (so the first decisions on a freshly
        loaded workspace do not parse them); sets that fail validation are skipped. How many were warmed."""
        warmed = 0
        with self._lock:
            self._check_open()
            for arm_set in arm_sets:
                try:
                    self._known_arm_set(arm_set)
                except InvalidInput:
                    continue
                warmed += 1
        return warmed

    def close(self) -> None:
        """Finish the workspace (after any call in flight); later calls raise :class:`RetiredLearner`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._known.clear()
            self._cache.clear()
            self._pads = []
            self._vw.finish()
