"""Streaming loader of VW DSJSON ``cb_adf`` decision records (our export and rlclientlib style).

One JSON object a line. Fields read:
``_label_cost`` (reward = -cost), ``_label_probability`` (pscore), ``_labelIndex`` (0-based index of
the chosen action in ``c._multi``; else ``_label_Action`` - 1, which is 1-based), ``a`` (action ids
in pmf order, 1-based; 0-based also accepted as in some VW test sets), ``p`` (the logging pmf, aligned with ``a``), ``c._multi`` (one feature dict
per action, in action-id order), ``EventId`` (or ``event_id``), ``Timestamp``, ``_skipLearn`` (true: skipped).
Pmfs off by float32 rounding (|sum - 1| <= 1e-4) are renormalised.
Records without a label (``_label_cost`` absent) are counted and skipped. Candidate sets are returned
ragged, in ``_multi`` order, which is the order ``action`` indexes.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from offline_eval.feedback import LoggedFeedback
from offline_eval.ragged import RaggedMatrix
from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput


@dataclass(frozen=True)
class DsjsonDecision:
    """One labelled decision. ``logging_pmf[k]`` is the logging probability of action k (``_multi``
    order); ``chosen_index`` indexes it. ``context``/``action_features`` are the raw JSON (read-only)
    and only filled when asked for."""

    line_number: int
    event_id: str
    timestamp: str
    chosen_index: int
    probability: float
    reward: float
    logging_pmf: tuple[float, ...] | None
    n_actions: int
    context: Mapping[str, Any] = field(default_factory=dict)
    action_features: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, eq=False)
class DsjsonLog:
    """A whole file as arrays: ``feedback.action`` indexes each event's candidate set;
    ``logging_pmf`` is ragged over those sets (None if any record lacks ``a``/``p``)."""

    feedback: LoggedFeedback
    candidate_counts: np.ndarray  # (n,) int64
    logging_pmf: RaggedMatrix | None
    event_ids: tuple[str, ...]
    timestamps: tuple[str, ...]
    skipped_learn: int
    skipped_unlabelled: int

    @property
    def indptr(self) -> np.ndarray:
        indptr = np.zeros(self.candidate_counts.shape[0] + 1, dtype=np.int64)
        np.cumsum(self.candidate_counts, out=indptr[1:])
        return indptr


@dataclass
class _Skips:
    learn: int = 0
    unlabelled: int = 0


def iter_dsjson(
    lines: Iterable[str], *, keep_features: bool = False, skips: _Skips | None = None
) -> Iterator[DsjsonDecision]:
    """Parse decision records one at a time (constant memory). Blank lines are ignored."""
    skips = skips if skips is not None else _Skips()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: not valid JSON ({exc.msg})", field="dsjson") from exc
        if not isinstance(record, dict):
            raise InvalidInput(f"line {number}: expected a JSON object", field="dsjson")
        if record.get("_skipLearn") is True:
            skips.learn += 1
            continue
        if "_label_cost" not in record:
            skips.unlabelled += 1
            continue
        yield _decision(number, record, keep_features)


def load_dsjson(path: str | Path, *, keep_features: bool = False) -> DsjsonLog:
    """Read a DSJSON file into arrays (one pass; records are not kept)."""
    skips = _Skips()
    actions: list[int] = []
    rewards: list[float] = []
    pscores: list[float] = []
    counts: list[int] = []
    pmf_values: list[float] = []
    pmf_complete = True
    event_ids: list[str] = []
    timestamps: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for decision in iter_dsjson(handle, keep_features=keep_features, skips=skips):
            actions.append(decision.chosen_index)
            rewards.append(decision.reward)
            pscores.append(decision.probability)
            counts.append(decision.n_actions)
            event_ids.append(decision.event_id)
            timestamps.append(decision.timestamp)
            if decision.logging_pmf is None:
                pmf_complete = False
            elif pmf_complete:
                pmf_values.extend(decision.logging_pmf)
    if not actions:
        raise InvalidInput(f"{path}: no labelled decision records", field="dsjson")
    candidate_counts = np.asarray(counts, dtype=np.int64)
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(candidate_counts, out=indptr[1:])
    return DsjsonLog(
        feedback=LoggedFeedback(np.asarray(actions, dtype=np.int64), rewards, pscores),
        candidate_counts=candidate_counts,
        logging_pmf=RaggedMatrix(indptr, pmf_values) if pmf_complete else None,
        event_ids=tuple(event_ids),
        timestamps=tuple(timestamps),
        skipped_learn=skips.learn,
        skipped_unlabelled=skips.unlabelled,
    )


def _decision(number: int, record: dict, keep_features: bool) -> DsjsonDecision:
    where = f"line {number}"
    context = record.get("c") if isinstance(record.get("c"), dict) else {}
    multi = context.get("_multi")
    ids = record.get("a")
    pmf = record.get("p")
    if isinstance(multi, list) and multi:
        n_actions = len(multi)
    elif isinstance(ids, list) and ids:
        n_actions = len(ids)
    else:
        raise InvalidInput(f"{where}: no actions (`c._multi` or `a`)", field="dsjson")

    if "_labelIndex" in record:
        chosen = _scalar(record["_labelIndex"], "_labelIndex", where, int)
    elif "_label_Action" in record:
        chosen = _scalar(record["_label_Action"], "_label_Action", where, int) - 1
    else:
        raise InvalidInput(f"{where}: needs `_labelIndex` or `_label_Action`", field="_labelIndex")
    if not 0 <= chosen < n_actions:
        raise InvalidInput(
            f"{where}: chosen action index {chosen} outside the {n_actions} actions",
            field="_labelIndex",
        )
    probability = _scalar(record.get("_label_probability"), "_label_probability", where,
                          low=0.0, high=1.0, low_open=True)
    reward = -_scalar(record["_label_cost"], "_label_cost", where)

    logging_pmf = None
    if ids is not None or pmf is not None:
        logging_pmf = _pmf_in_action_order(ids, pmf, n_actions, where)
        if abs(logging_pmf[chosen] - probability) > 1e-5 + 1e-4 * probability:
            raise InvalidInput(
                f"{where}: `p` gives the chosen action probability {logging_pmf[chosen]:.8g} but "
                f"`_label_probability` is {probability:.8g}",
                field="_label_probability",
            )

    return DsjsonDecision(
        line_number=number,
        event_id=str(record.get("EventId", record.get("event_id", ""))),
        timestamp=str(record.get("Timestamp", "")),
        chosen_index=chosen,
        probability=probability,
        reward=reward,
        logging_pmf=logging_pmf,
        n_actions=n_actions,
        context=MappingProxyType(
            {k: v for k, v in context.items() if k != "_multi"} if keep_features else {}
        ),
        action_features=tuple(MappingProxyType(a) for a in multi)
        if keep_features and isinstance(multi, list)
        else (),
    )


def _pmf_in_action_order(ids: object, pmf: object, n_actions: int, where: str) -> tuple[float, ...]:
    if not isinstance(ids, list) or not isinstance(pmf, list) or len(ids) != len(pmf):
        raise InvalidInput(f"{where}: `a` and `p` must be lists of equal length", field="p")
    ordered_ids = sorted(ids) if all(isinstance(i, int) for i in ids) else None
    if len(ids) == n_actions and ordered_ids == list(range(1, n_actions + 1)):
        first_id = 1
    elif len(ids) == n_actions and ordered_ids == list(range(n_actions)):
        first_id = 0  # some VW test sets number actions from 0
    else:
        raise InvalidInput(
            f"{where}: `a` must list each action id 1..{n_actions} once, got {ids}", field="a"
        )
    ordered = [0.0] * n_actions
    for action_id, probability in zip(ids, pmf):
        ordered[action_id - first_id] = _scalar(probability, "p", where)
    total = sum(ordered)
    if any(p < 0.0 for p in ordered) or abs(total - 1.0) > 1e-4:
        raise InvalidInput(f"{where}: `p` must be a probability distribution", field="p")
    # Exports store float32 pmfs; remove their rounding so downstream checks (1e-5) pass.
    return tuple(p / total for p in ordered)


def _scalar(value: object, name: str, where: str, kind: type = float, **bounds: Any) -> Any:
    """``check_scalar`` with the record's place in the file in front of a refusal."""
    try:
        return check_scalar(value, name, kind, **bounds)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}", field=name) from None
