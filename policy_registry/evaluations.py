"""Evaluation runs: metrics, metric histories and figures of an evaluated policy, in the experiment.

A registry version's run is linked to the version both ways (the run's tags name it; the version's
``last_evaluation_run`` tag names the run). A policy without a version (a baseline, a counterfactual
candidate) gets a plain run tagged with its name and kind. Both are tagged
``offerbandit.kind = evaluation``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policy_registry.records import MetricPoint
from policy_registry.runs import record_run
from policy_registry.store import RegistryStore
from policy_registry.validation import NAME_PATTERN, check_version, checked_metrics, validate_campaign

__all__ = ["log_evaluation", "log_unversioned_evaluation"]


def _checked_series(series: object) -> tuple[MetricPoint, ...]:
    if isinstance(series, (str, bytes)) or not isinstance(series, Sequence) \
            or not all(isinstance(point, MetricPoint) for point in series):
        raise InvalidInput("series must be a sequence of MetricPoint", field="series")
    for point in series:
        checked_metrics({point.key: point.value})
        try:
            check_scalar(point.step, f"metric {point.key!r}: step", int, low=0)
            check_scalar(point.timestamp_s, f"metric {point.key!r}: timestamp_s", float, low=0)
        except InvalidInput as exc:
            raise InvalidInput(str(exc), field="series") from None
    return tuple(series)


def _checked_figures(figures: object) -> dict[str, Path]:
    """``name -> file`` as stored: ``<name><suffix>`` (the file's suffix unless the name has one)."""
    if not isinstance(figures, Mapping):
        raise InvalidInput("figures must be a mapping of name to file path", field="figures")
    stored: dict[str, Path] = {}
    for figure_name, figure_path in figures.items():
        if not isinstance(figure_name, str) or not NAME_PATTERN.match(figure_name):
            raise InvalidInput(f"figure name {figure_name!r} is not valid", field="figures")
        path = Path(figure_path)
        if not path.is_file():
            raise InvalidInput(f"figure {figure_name!r}: no file at {path}", field="figures")
        stored[figure_name if Path(figure_name).suffix else figure_name + path.suffix] = path
    return stored


def log_evaluation(
    store: RegistryStore,
    campaign: str,
    version: str,
    metrics: Mapping[str, float],
    figures: Mapping[str, str | os.PathLike[str]],
    series: Sequence[MetricPoint] = (),
) -> str:
    """An evaluation run linked to a version (tags both ways), with metrics and figure files.

    Name metrics so runs line up in MLflow's compare view, e.g. ``ipw.value``, ``ipw.ci_low``,
    ``dr.lift_vs_champion``. Figures are stored as ``figures/<name><suffix>``. ``series`` adds
    metric histories (e.g. a value per day), charted by MLflow over steps or time; give them keys
    of their own, apart from ``metrics``.
    """
    version = check_version(version)
    clean_metrics = checked_metrics(metrics)
    clean_series = _checked_series(series)
    figure_files = _checked_figures(figures)
    record = store.version_record(campaign, version)
    name = store.model_name(campaign)
    tags = {
        "offerbandit.kind": "evaluation", "campaign": campaign, "registered_model": name,
        "version": version, "policy_name": record.tags.get("policy_name", ""),
    }
    run_id = record_run(store, f"evaluation {campaign} v{version}", tags, clean_metrics,
                        series=clean_series, files=figure_files)
    store.set_version_tags(campaign, version, {"last_evaluation_run": run_id})
    return run_id


def log_unversioned_evaluation(
    store: RegistryStore,
    campaign: str,
    policy: str,
    policy_kind: str,
    metrics: Mapping[str, float],
    figures: Mapping[str, str | os.PathLike[str]],
) -> str:
    """An evaluation run of a policy that is no registry version (a baseline, a counterfactual)."""
    validate_campaign(campaign)
    if not isinstance(policy, str) or not policy.strip():
        raise InvalidInput("policy must name the evaluated policy", field="policy")
    if not isinstance(policy_kind, str) or not policy_kind.strip():
        raise InvalidInput("policy_kind must say what kind of policy it is", field="policy_kind")
    clean_metrics = checked_metrics(metrics)
    figure_files = _checked_figures(figures)
    tags = {"offerbandit.kind": "evaluation", "campaign": campaign, "policy": policy,
            "policy_kind": policy_kind, "registered_model": store.model_name(campaign)}
    return record_run(store, f"evaluation {campaign} {policy}", tags, clean_metrics, files=figure_files)
