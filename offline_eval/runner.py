"""Evaluate named policies on the service's decision log: load, split by time, train, estimate.

The log's final decisions (see :mod:`offline_eval.log_dataset`; or a Parquet export's, see
:mod:`offline_eval.parquet_dataset`) are split in time order: the first
``train_fraction`` is the *training window* (baselines and counterfactual policies learn from it),
the rest is the *evaluation window* every policy is estimated on. A registry version is estimated
only on the part of the evaluation window after the last event it learned from (its lineage's
``log_window_end``). The DM/DR reward model is cross-fitted by time (:mod:`offline_eval.reward_model`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from offline_eval import _validation as check
from offline_eval.estimators import OffPolicyEstimator, resolve
from offline_eval.evaluation import DEFAULT_N_BOOTSTRAP, evaluate
from offline_eval.results import EvaluationReport, PolicyResult, Window
from offline_eval.reward_model import RewardModelConfig, cross_fit_q_hat
from offline_eval.settings import OfflineSettings
from offline_eval.log_dataset import DEFAULT_CHUNK, LoggedDataset, load_dataset
from offline_eval.parquet_dataset import is_parquet_export, load_parquet_dataset
from offline_eval.targets import TargetPolicy, TargetSpec, build_target, parse_target, registry_for, target_pmf
from policy_registry import PolicyRegistry

__all__ = ["DEFAULT_TRAIN_FRACTION", "ProgressCallback", "evaluate_policies", "load_source"]

ProgressCallback = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is "loading log", "reward model" or a policy label."""

DEFAULT_TRAIN_FRACTION = 0.5


def _check_train_fraction(value: float) -> float:
    return float(check_scalar(value, "train_fraction", float, low=0.0, high=1.0, low_open=True, high_open=True))


def _check_policies(policies: Sequence[str]) -> tuple[TargetSpec, ...]:
    if isinstance(policies, str) or not isinstance(policies, Sequence) or not policies:
        raise InvalidInput("name at least one policy to evaluate (--policy)", field="policy")
    specs = tuple(parse_target(p) for p in policies)
    texts = [s.text for s in specs]
    repeated = sorted({t for t in texts if texts.count(t) > 1})
    if repeated:
        raise InvalidInput(f"policy {repeated[0]!r} is named twice", field="policy")
    return specs


def load_source(source: str | Path, **options: object) -> LoggedDataset:
    """The dataset of ``source``: a Parquet export directory (`load_parquet_dataset`), else a data
    directory or log URL (`load_dataset`); ``options`` are the loaders' shared keywords."""
    if is_parquet_export(source):
        return load_parquet_dataset(source, **options)
    return load_dataset(source, **options)


def _window(dataset, start: int, stop: int) -> Window:
    if stop <= start:
        return Window(start, stop, None, None)
    return Window(start, stop, float(dataset.decided_at[start]), float(dataset.decided_at[stop - 1]))


def evaluate_policies(
    data_dir: str | Path,
    policies: Sequence[str],
    *,
    campaign: str | None = None,
    estimators: Sequence[str | OffPolicyEstimator] | None = None,
    alpha: float = 0.05,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    since: float | None = None,
    until: float | None = None,
    policy_version: str | None = None,
    settings: OfflineSettings | None = None,
    registry: PolicyRegistry | None = None,
    reward_model: RewardModelConfig | None = RewardModelConfig(),
    progress: ProgressCallback | None = None,
    chunk: int = DEFAULT_CHUNK,
    source: str | Path | None = None,
) -> EvaluationReport:
    """Estimate the value of each named policy on the decision log in ``data_dir``.

    ``policies``: target names (see :mod:`offline_eval.targets`). ``estimators``: names or
    instances; None = every estimator that applies. ``settings``: default rewards and the campaign's
    own policy (None: missing rewards count as 0, counterfactuals train with their own defaults). ``reward_model`` None skips q_hat (and so the
    DM/DR family). ``registry``: defaults to the data dir's MLflow store when a version or alias
    is named. ``progress(stage, done, total)`` is called as work advances. ``source``: where the
    decisions come from when not ``data_dir``'s own log: a log URL (``sqlite:///...``,
    ``postgresql://...``) or a Parquet export directory; ``data_dir`` still locates the MLflow store.
    """
    specs = _check_policies(policies)
    train_fraction = _check_train_fraction(train_fraction)
    alpha = check.check_alpha(alpha)
    n_bootstrap = check.check_n_bootstrap(n_bootstrap)
    seed = int(check_scalar(seed, "seed", int, low=0))
    chosen = None if estimators is None else [resolve(e) for e in
                                              ([estimators] if isinstance(estimators, str) else estimators)]
    needs_q_hat = chosen is None or any(e.requires_q_hat for e in chosen)
    if chosen is not None and needs_q_hat and reward_model is None:
        raise InvalidInput("DM/DR estimators need the reward model", field="estimators")
    data_dir = Path(data_dir)
    if progress is not None:
        progress("loading log", 0, 1)
    settings = settings if settings is not None else OfflineSettings()
    dataset = load_source(data_dir if source is None else source, campaign=campaign, since=since, until=until,
                          policy_version=policy_version, defaults=settings.rewards, chunk=chunk)
    if progress is not None:
        progress("loading log", 1, 1)
    n = dataset.n_events
    train_stop = int(math.floor(n * train_fraction))
    if train_stop < 1 or train_stop >= n:
        raise InvalidInput(f"{n} events cannot be split at train_fraction {train_fraction}: both the training "
                           "and the evaluation window need events", field="train_fraction")
    if any(s.needs_registry for s in specs) and registry is None:
        registry = registry_for(data_dir)
    own_policy = settings.policy_of(dataset.campaign)

    targets: list[TargetPolicy] = []
    try:
        # every target first: an unknown alias or version fails before the costly reward model
        for spec in specs:
            targets.append(build_target(spec, dataset, train_stop=train_stop, own_policy=own_policy,
                                        registry=registry, seed=seed, chunk=chunk))
        q_hat = None
        folds = None
        if needs_q_hat and reward_model is not None:
            folds = reward_model.n_folds
            q_hat = cross_fit_q_hat(dataset, train_stop, n, reward_model, progress=progress, chunk=chunk)
        results = [_evaluate_one(target, dataset, train_stop, q_hat, chosen, alpha, n_bootstrap, seed, progress,
                                 chunk) for target in targets]
    finally:
        for target in targets:
            target.close()

    rewards = dataset.feedback.reward[train_stop:]
    return EvaluationReport(
        data_dir=str(data_dir), campaign=dataset.campaign, log_filter=dataset.log_filter, n_events=n,
        exclusions=dataset.exclusions, training=_window(dataset, 0, train_stop),
        evaluation=_window(dataset, train_stop, n), logged_value=float(rewards.mean()),
        estimators=tuple(dict.fromkeys(key for r in results if r.evaluation for key in r.evaluation)),
        alpha=float(alpha), n_bootstrap=int(n_bootstrap), seed=seed, train_fraction=train_fraction,
        reward_model_folds=folds, policies=tuple(results))


def _evaluate_one(target: TargetPolicy, dataset, train_stop: int, q_hat, chosen, alpha: float,
                  n_bootstrap: int, seed: int, progress: ProgressCallback | None, chunk: int) -> PolicyResult:
    n = dataset.n_events
    start = train_stop
    warnings = list(target.notes)
    if target.train_window is not None:  # rows it learned from (timestamps can tie across a batch)
        start = max(start, target.train_window[1])
    elif target.trained_until is not None:
        start = max(start, dataset.first_index_after(target.trained_until))
        if start > train_stop:
            warnings.append(f"{target.label} learned from events up to {target.trained_until:.0f}: it is "
                            f"evaluated only on the {n - start} later events, not the whole evaluation window.")
    trained_on = _window(dataset, *target.train_window) if target.train_window else None
    window = _window(dataset, start, n)
    if start >= n:
        warnings.append(f"no logged event is later than what {target.label} learned from: nothing to evaluate.")
        return PolicyResult(target.spec.text, target.label, target.spec.kind, target.version, window,
                            trained_on, None, tuple(warnings))
    pmf = target_pmf(target, dataset, start, n, chunk=chunk, progress=progress)
    part = dataset.subset(start, n)
    q_part = None
    if q_hat is not None:
        lo, hi = int(q_hat.indptr[start - train_stop]), int(q_hat.indptr[n - train_stop])
        q_part = type(q_hat)(q_hat.indptr[start - train_stop:] - lo, q_hat.values[lo:hi])
    evaluation = evaluate(part.feedback, pmf, q_hat=q_part, estimators=chosen, alpha=alpha,
                          n_bootstrap=n_bootstrap, random_state=np.random.default_rng(seed),
                          logging_pmf=part.logging_pmf)
    warnings.extend(evaluation.warnings)
    return PolicyResult(target.spec.text, target.label, target.spec.kind, target.version, window, trained_on,
                        evaluation, tuple(dict.fromkeys(warnings)))
