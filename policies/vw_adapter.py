"""The one place that talks to VowpalWabbit (after coba's ``VowpalMediator``).

Nothing else in the project imports ``vowpalwabbit`` or writes VW input. This module owns:

- the feature mapping: which namespace each piece of a decision goes into, and how user data is
  escaped so that ``|``, ``:``, ``=``, whitespace or control characters can never corrupt a line;
- the reward <-> cost conversion (VW minimises cost; ``cost = -reward`` here and nowhere else);
- :class:`CbAdfLearner`, the ``--cb_explore_adf`` mediator (pmf, learn, save/load) behind a lock;
- :class:`VWRewardRegressor`, a squared-loss reward model on the same joint-arm features;
- the DSJSON record builder, so the export uses exactly the same features as online learning.

Namespaces (VW interacts namespaces by their first letter)::

    u   categorical context        "key=value"        (shared line)
    n   numeric context            "key:value"        (shared line)
    o   offer id                   "id=<offer id>"    (arm line)
    of  offer features (index o)   "key=value"        (arm line; a separate namespace name so a
                                                       feature called "id" cannot collide)
    f   format / channel           "format=<value>"   (arm line)
    t   send-time slot             "slot=<value>"     (arm line)

Per-arm examples are parsed once and cached (keyed by offer features, format and time slot); a
request then parses only its shared line. VW's cb_adf reductions attach the shared features to each
arm example for the duration of a predict/learn call and detach them afterwards, which is what makes
re-using parsed arm examples valid; ``tests/test_policies_vw_adapter.py`` checks that cached and
freshly parsed examples give bit-identical pmfs and learning for every exploration algorithm.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from vowpalwabbit import pyvw

from offerbandit.errors import InvalidInput, ModelError
from policies.types import ArmSet, DecisionContext, JointArm, LearningEvent, Offer

CONTEXT_NAMESPACE = "u"
NUMERIC_NAMESPACE = "n"
OFFER_NAMESPACE = "o"
OFFER_FEATURE_NAMESPACE = "of"
FORMAT_NAMESPACE = "f"
TIME_NAMESPACE = "t"

#: context x offer, context x format, context x time (categorical and numeric), format x time.
DEFAULT_INTERACTIONS: tuple[str, ...] = ("uo", "uf", "ut", "no", "nf", "nt", "ft")
_NAMESPACE_LETTERS = frozenset("unoft")

EXPLORATIONS: tuple[str, ...] = ("epsilon", "softmax", "squarecb", "bag", "cover")

# Everything VW's text parser treats specially, plus what cannot cross into C++ as UTF-8.
_UNSAFE = re.compile(r"[%|:=\s\x00-\x1f\x7f\ud800-\udfff]")


def escape_token(text: str) -> str:
    """Make ``text`` safe as (part of) a VW feature name; injective, so distinct values stay distinct.

    Unsafe characters become ``%<hex>;`` (``%`` itself is escaped, so the mapping is reversible).
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda match: f"%{ord(match.group()):x};", text)


# --- reward <-> cost: the only place the sign flips -------------------------------------------

def cost_from_reward(reward: float) -> float:
    """VW minimises cost; we maximise reward."""
    return -float(reward)


def reward_from_cost(cost: float) -> float:
    return -float(cost)


# --- feature mapping --------------------------------------------------------------------------

def _check_number(value: float, field: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(f"{field} must be a finite number, got {value!r}", field=field)
    return number


def _context_features(context: DecisionContext) -> tuple[list[str], list[tuple[str, float]]]:
    categorical = [
        f"{escape_token(key)}={escape_token(value)}" for key, value in sorted(context.context.items())
    ]
    numeric = [
        (escape_token(key), _check_number(value, f"numeric.{key}"))
        for key, value in sorted(context.numeric.items())
    ]
    return categorical, numeric


def shared_line(context: DecisionContext) -> str:
    categorical, numeric = _context_features(context)
    parts = ["shared"]
    if categorical:
        parts.append(f"|{CONTEXT_NAMESPACE} " + " ".join(categorical))
    if numeric:
        parts.append(f"|{NUMERIC_NAMESPACE} " + " ".join(f"{name}:{value!r}" for name, value in numeric))
    if len(parts) == 1:
        # A bare "shared" line would be parsed as one more action: give it an empty namespace.
        parts.append(f"|{CONTEXT_NAMESPACE}")
    return " ".join(parts)


def _offer_part(offer: Offer) -> str:
    text = f"|{OFFER_NAMESPACE} id={escape_token(offer.id)}"
    if offer.features:
        text += f" |{OFFER_FEATURE_NAMESPACE} " + " ".join(
            f"{escape_token(key)}={escape_token(value)}" for key, value in sorted(offer.features.items())
        )
    return text


def _arm_suffix(arm: JointArm) -> str:
    return (
        f" |{FORMAT_NAMESPACE} format={escape_token(arm.format)}"
        f" |{TIME_NAMESPACE} slot={escape_token(arm.time_slot)}"
    )


def arm_line(arm: JointArm, offer: Offer) -> str:
    """The unlabelled VW text line of one joint arm (labels are prefixed by the learner)."""
    return _offer_part(offer) + _arm_suffix(arm)


def _offer_parts(arm_set: ArmSet, known: dict[str, tuple[Any, str]] | None = None) -> dict[str, str]:
    """Validate ``arm_set`` and return each used offer's text part (built once per offer).

    ``known`` (offer id -> (features, part)) lets a caller keep parts between requests; an entry is
    reused only while the offer's features are equal to the ones it was built from.
    """
    if not isinstance(arm_set, ArmSet):
        raise InvalidInput("arm_set must be an ArmSet", field="arm_set")
    if len(arm_set.arms) == 0:
        raise InvalidInput("arm_set has no arms", field="arm_set.arms")
    parts: dict[str, str] = {}
    offers = arm_set.offers
    for index, arm in enumerate(arm_set.arms):
        offer_id = arm.offer_id
        if offer_id not in parts:
            offer = offers.get(offer_id)
            if offer is None:
                raise InvalidInput(
                    f"arm {index} refers to offer {offer_id!r}, which is not among the offers",
                    field=f"arm_set.arms[{index}].offer_id",
                )
            entry = known.get(offer_id) if known is not None else None
            if entry is not None and entry[0] == offer.features:
                parts[offer_id] = entry[1]
            else:
                parts[offer_id] = _offer_part(offer)
                if known is not None:
                    known[offer_id] = (dict(offer.features), parts[offer_id])
    return parts


def _check_context(context: DecisionContext) -> None:
    if not isinstance(context, DecisionContext):
        raise InvalidInput("context must be a DecisionContext", field="context")


def _check_interactions(interactions: Sequence[str]) -> tuple[str, ...]:
    checked = tuple(interactions)
    for item in checked:
        if not isinstance(item, str) or len(item) < 2 or not set(item) <= _NAMESPACE_LETTERS:
            raise InvalidInput(
                f"interaction {item!r} must be 2+ namespace letters from {''.join(sorted(_NAMESPACE_LETTERS))}",
                field="interactions",
            )
    return checked


def _check_range(field: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a finite number, got {value!r}", field=field)
    if value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise InvalidInput(f"{field} must be in {bracket}{low}, {high}], got {value!r}", field=field)


def _check_int(field: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be an integer in [{low}, {high}], got {value!r}", field=field)


# --- workspace options ------------------------------------------------------------------------

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
        object.__setattr__(self, "interactions", _check_interactions(self.interactions))
        if self.exploration not in EXPLORATIONS:
            raise InvalidInput(
                f"exploration must be one of {', '.join(EXPLORATIONS)}, got {self.exploration!r}",
                field="exploration",
            )
        _check_range("epsilon", self.epsilon, 0.0, 1.0)
        _check_range("softmax_lambda", self.softmax_lambda, 0.0, math.inf, low_open=True)
        _check_range("squarecb_gamma_scale", self.squarecb_gamma_scale, 0.0, math.inf, low_open=True)
        _check_range("learning_rate", self.learning_rate, 0.0, math.inf, low_open=True)
        _check_int("bag_size", self.bag_size, 1, 100)
        _check_int("cover_size", self.cover_size, 1, 100)
        _check_int("bits", self.bits, 18, 30)
        _check_int("seed", self.seed, 0, 2**31 - 1)
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


# --- the mediator -----------------------------------------------------------------------------

def _save_workspace(workspace: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="offerbandit-vw-") as folder:
        path = os.path.join(folder, "model.vw")
        workspace.save(path)
        with open(path, "rb") as handle:
            return handle.read()


def _load_workspace(args: list[str], data: bytes) -> Any:
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        raise ModelError("VW model bytes are empty")
    with tempfile.TemporaryDirectory(prefix="offerbandit-vw-") as folder:
        path = os.path.join(folder, "model.vw")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            return pyvw.Workspace(arg_list=[*args, "--save_resume", "-i", path])
        except Exception as exc:  # VW raises RuntimeError/ValueError with C++ messages
            raise ModelError(f"VW could not load the model: {exc}") from exc


class _ArmExampleCache:
    """Parsed, unlabelled arm examples of one workspace, keyed by (offer part, format, time slot),
    plus the text parts of the offers seen. Bounded: cleared when full (a catalogue normally fits)."""

    def __init__(self, parse_one, max_size: int) -> None:
        self._parse_one = parse_one
        self._max_size = max_size
        self._examples: dict[tuple[str, str, str], Any] = {}
        self.offer_parts: dict[str, tuple[Any, str]] = {}

    def __len__(self) -> int:
        return len(self._examples)

    def examples(self, arm_set: ArmSet, offer_parts: dict[str, str]) -> list[Any]:
        cache = self._examples
        found = []
        for arm in arm_set.arms:
            key = (offer_parts[arm.offer_id], arm.format, arm.time_slot)
            example = cache.get(key)
            if example is None:
                if len(cache) >= self._max_size:
                    cache.clear()
                    self.offer_parts.clear()
                example = cache[key] = self._parse_one(key[0] + _arm_suffix(arm))
            found.append(example)
        return found

    def clear(self) -> None:
        self._examples.clear()
        self.offer_parts.clear()


class CbAdfLearner:
    """A ``--cb_explore_adf`` workspace with its feature mapping, arm cache and lock.

    All methods are thread-safe (one lock around every VW call: a workspace is not thread-safe).
    """

    def __init__(self, options: CbAdfOptions = CbAdfOptions(), *, arm_cache_size: int = 200_000,
                 model: bytes | None = None) -> None:
        self.options = options
        self._lock = threading.Lock()
        if model is None:
            self._vw = pyvw.Workspace(arg_list=[*options.args(), "--save_resume"])
        else:
            self._vw = _load_workspace(options.args(with_seed=False), model)
        self._cache = _ArmExampleCache(self._parse_one, arm_cache_size)

    # parsing (call with the lock held). ``pyvw.Example(vw, line)`` frees its native example when
    # collected; ``Workspace.parse`` does not unless finished (measured ~30 KB leaked per example), and
    # finishing a multi-example would also finish the cached arm examples.
    def _parse_one(self, line: str) -> Any:
        return pyvw.Example(self._vw, line)

    def _examples(self, context: DecisionContext, arm_set: ArmSet, chosen: int | None = None,
                  label: str = "") -> list[Any]:
        _check_context(context)
        parts = _offer_parts(arm_set, self._cache.offer_parts)
        shared_text = shared_line(context)
        arm_examples = self._cache.examples(arm_set, parts)
        if len({id(example) for example in arm_examples}) != len(arm_examples):
            raise InvalidInput("arm_set contains the same joint arm twice", field="arm_set.arms")
        if chosen is not None:  # only the chosen arm carries a label: a fresh example, not the cached one
            arm = arm_set.arms[chosen]
            arm_examples[chosen] = self._parse_one(f"{label} {parts[arm.offer_id]}{_arm_suffix(arm)}")
        return [self._parse_one(shared_text), *arm_examples]

    def _pmf_locked(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        examples = self._examples(context, arm_set)
        pmf = np.asarray(self._vw.predict(examples), dtype=np.float64)
        if pmf.shape != (len(arm_set.arms),):
            raise ModelError(f"VW returned {pmf.shape[0]} probabilities for {len(arm_set.arms)} arms")
        return pmf

    def predict_pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """VW's pmf over ``arm_set.arms`` in arm order, as float64 (VW computes in float32)."""
        with self._lock:
            return self._pmf_locked(context, arm_set)

    def predict_pmf_uncached(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """The same pmf from freshly built text lines (the slow path; a reference for tests and bench)."""
        _check_context(context)
        parts = _offer_parts(arm_set)
        lines = [shared_line(context), *(parts[arm.offer_id] + _arm_suffix(arm) for arm in arm_set.arms)]
        with self._lock:
            return np.asarray(self._vw.predict(lines), dtype=np.float64)

    def predict_pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        """Many pmfs under one lock acquisition."""
        with self._lock:
            return [self._pmf_locked(context, arm_set) for context, arm_set in items]

    def learn(self, events: Iterable[LearningEvent]) -> None:
        """Learn each event in order; only the chosen arm is labelled ``cost:probability``.

        Every event is validated before any is learned (a bad batch changes nothing), except a
        duplicate arm, which is found while building examples."""
        checked = [_check_event(event, index) for index, event in enumerate(events)]
        with self._lock:
            for event in checked:
                label = f"0:{cost_from_reward(event.reward)!r}:{float(event.probability)!r}"
                self._vw.learn(self._examples(event.context, event.arm_set, event.chosen, label))

    def save(self) -> bytes:
        """The model with its learning state (``--save_resume``): online learning continues identically."""
        with self._lock:
            return _save_workspace(self._vw)

    def load(self, data: bytes) -> None:
        """Replace this workspace's model by ``data`` (from :meth:`save` or a VW model file)."""
        workspace = _load_workspace(self.options.args(with_seed=False), data)
        with self._lock:
            old, self._vw = self._vw, workspace
            self._cache = _ArmExampleCache(self._parse_one, self._cache._max_size)
        old.finish()

    @classmethod
    def from_bytes(cls, options: CbAdfOptions, data: bytes) -> "CbAdfLearner":
        return cls(options, model=data)

    @property
    def cached_arms(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._vw.finish()


def _check_event(event: LearningEvent, index: int) -> LearningEvent:
    if not isinstance(event, LearningEvent):
        raise InvalidInput(f"events[{index}] must be a LearningEvent", field=f"events[{index}]")
    if not isinstance(event.context, DecisionContext):
        raise InvalidInput(f"events[{index}].context must be a DecisionContext", field=f"events[{index}].context")
    if not isinstance(event.arm_set, ArmSet):
        raise InvalidInput(f"events[{index}].arm_set must be an ArmSet", field=f"events[{index}].arm_set")
    offers = event.arm_set.offers
    for arm_index, arm in enumerate(event.arm_set.arms):
        if arm.offer_id not in offers:
            raise InvalidInput(f"events[{index}] arm {arm_index} refers to an unknown offer {arm.offer_id!r}",
                               field=f"events[{index}].arm_set.arms[{arm_index}].offer_id")
    n_arms = len(event.arm_set.arms)
    if not isinstance(event.chosen, (int, np.integer)) or not 0 <= int(event.chosen) < n_arms:
        raise InvalidInput(f"events[{index}].chosen must index one of {n_arms} arms", field=f"events[{index}].chosen")
    probability = _check_number(event.probability, f"events[{index}].probability")
    if not 0.0 < probability <= 1.0:
        raise InvalidInput(f"events[{index}].probability must be in (0, 1], got {probability}",
                           field=f"events[{index}].probability")
    _check_number(event.reward, f"events[{index}].reward")
    return event


# --- reward model -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RewardRegressorConfig:
    """Squared-loss regression of reward on (context, joint arm) features with shared x arm interactions."""

    interactions: tuple[str, ...] = DEFAULT_INTERACTIONS
    bits: int = 24
    learning_rate: float = 0.1
    epochs: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "interactions", _check_interactions(self.interactions))
        if not isinstance(self.bits, int) or not 18 <= self.bits <= 30:
            raise InvalidInput("bits must be an integer in [18, 30]", field="bits")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise InvalidInput("learning_rate must be a positive finite number", field="learning_rate")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise InvalidInput("epochs must be an integer >= 1", field="epochs")

    def args(self) -> list[str]:
        # cb_adf with the direct method is exactly a squared-loss regressor of cost on shared+arm
        # features; learning on (shared, chosen arm) alone keeps it a plain regression.
        args = ["--cb_adf", "--cb_type", "dm", "-b", str(self.bits), "-l", repr(float(self.learning_rate)),
                "--quiet", "--random_seed", str(self.seed)]
        for interaction in self.interactions:
            args += ["--interactions", interaction]
        return args


class VWRewardRegressor:
    """Expected reward per joint arm, for the DM/DR family of offline estimators (unweighted fit)."""

    def __init__(self, config: RewardRegressorConfig = RewardRegressorConfig(), *,
                 arm_cache_size: int = 200_000) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._vw = pyvw.Workspace(arg_list=config.args())
        self._cache = _ArmExampleCache(lambda line: pyvw.Example(self._vw, line), arm_cache_size)

    def fit(self, events: Sequence[LearningEvent]) -> "VWRewardRegressor":
        """Regress reward on (context, chosen arm), ``config.epochs`` passes in the given order."""
        checked = [_check_event(event, index) for index, event in enumerate(events)]
        with self._lock:
            for _ in range(self.config.epochs):
                for event in checked:
                    _check_context(event.context)
                    arm = event.chosen_arm
                    offer = event.arm_set.offers.get(arm.offer_id)
                    if offer is None:
                        raise InvalidInput("the chosen arm refers to an unknown offer", field="events.chosen")
                    label = f"0:{cost_from_reward(event.reward)!r}:1.0"
                    self._vw.learn([shared_line(event.context), f"{label} {arm_line(arm, offer)}"])
        return self

    def _predict_locked(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        _check_context(context)
        parts = _offer_parts(arm_set, self._cache.offer_parts)
        arms = self._cache.examples(arm_set, parts)
        if len({id(example) for example in arms}) != len(arms):
            raise InvalidInput("arm_set contains the same joint arm twice", field="arm_set.arms")
        costs = self._vw.predict([pyvw.Example(self._vw, shared_line(context)), *arms])
        return np.array([reward_from_cost(cost) for cost in costs], dtype=np.float64)

    def predict(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        """Estimated expected reward of each arm of ``arm_set`` (shape ``(len(arm_set),)``)."""
        with self._lock:
            return self._predict_locked(context, arm_set)

    def predict_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        with self._lock:
            return [self._predict_locked(context, arm_set) for context, arm_set in items]

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._vw.finish()


# --- DSJSON -----------------------------------------------------------------------------------

def _namespace(features: Iterable[str]) -> dict[str, float]:
    return {name: 1 for name in features}


def dsjson_context(context: DecisionContext, arm_set: ArmSet) -> dict[str, Any]:
    """The ``c`` object of a DSJSON record: shared namespaces plus ``_multi`` (one entry per arm, in
    arm order), with the same namespaces and feature names as the text lines the learner uses."""
    _check_context(context)
    _offer_parts(arm_set)  # validation
    categorical, numeric = _context_features(context)
    record: dict[str, Any] = {}
    if categorical:
        record[CONTEXT_NAMESPACE] = _namespace(categorical)
    if numeric:
        record[NUMERIC_NAMESPACE] = {name: value for name, value in numeric}
    multi = []
    for arm in arm_set.arms:
        offer = arm_set.offers[arm.offer_id]
        action: dict[str, Any] = {OFFER_NAMESPACE: {f"id={escape_token(offer.id)}": 1}}
        if offer.features:
            action[OFFER_FEATURE_NAMESPACE] = _namespace(
                f"{escape_token(key)}={escape_token(value)}" for key, value in sorted(offer.features.items())
            )
        action[FORMAT_NAMESPACE] = {f"format={escape_token(arm.format)}": 1}
        action[TIME_NAMESPACE] = {f"slot={escape_token(arm.time_slot)}": 1}
        multi.append(action)
    record["_multi"] = multi
    return record


def dsjson_record(*, event_id: str, timestamp: str, context: DecisionContext, arm_set: ArmSet,
                  pmf: Sequence[float], chosen: int, reward: float, skip_learn: bool = False,
                  model_id: str = "") -> dict[str, Any]:
    """One DSJSON decision record (as ``vw --dsjson --cb_adf`` reads it) with its joined reward.

    ``a`` lists 1-based action ids with the chosen one first, ``p`` their probabilities in that order.
    """
    n_arms = len(arm_set.arms)
    probabilities = [float(value) for value in pmf]
    if len(probabilities) != n_arms:
        raise InvalidInput(f"pmf has {len(probabilities)} entries for {n_arms} arms", field="pmf")
    if not 0 <= chosen < n_arms:
        raise InvalidInput(f"chosen must index one of {n_arms} arms", field="chosen")
    _check_number(reward, "reward")
    order = [chosen, *(index for index in range(n_arms) if index != chosen)]
    record: dict[str, Any] = {
        "_label_cost": cost_from_reward(reward),
        "_label_probability": probabilities[chosen],
        "_label_Action": chosen + 1,
        "_labelIndex": chosen,
        "o": [{"v": float(reward), "EventId": event_id}],
        "Timestamp": timestamp,
        "Version": "1",
        "EventId": event_id,
        "a": [index + 1 for index in order],
        "c": dsjson_context(context, arm_set),
        "p": [probabilities[index] for index in order],
    }
    if model_id:
        record["VWState"] = {"m": model_id}
    if skip_learn:
        record["_skipLearn"] = True
    return record


def dsjson_line(record: dict[str, Any]) -> str:
    """A DSJSON record as one line (non-ASCII escaped, so a line never contains a raw newline)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
