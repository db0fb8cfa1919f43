"""Show an :class:`~offline_eval.results.EvaluationReport`: a rich table for people, JSON for machines.

JSON keys are stable (tests pin them): ``campaign``, ``data_dir``, ``filter``, ``n_events``,
``excluded``, ``training_window``, ``evaluation_window``, ``logged_value``, ``alpha``, ``n_bootstrap``,
``seed``, ``train_fraction``, ``reward_model_folds``, ``mlflow_runs``, and ``policies``: a list of
``{policy, label, kind, version, window, trained_on, n_events, estimates: {estimator: {value, ci_low,
ci_high, normal_low, normal_high, standard_error, interval_method, clipped_share, warnings}},
diagnostics: {...}, warnings}``. Times are unix seconds; missing values are null.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from offline_eval.results import EvaluationReport, PolicyResult, Window

__all__ = ["JSON_FORMAT", "print_report", "to_dict", "to_json"]

JSON_FORMAT = "offerbandit-eval/1"


def _number(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _window(window: Window | None) -> dict[str, Any] | None:
    if window is None:
        return None
    return {"start_index": window.start, "stop_index": window.stop, "n_events": window.n_events,
            "first_time": window.first_time, "last_time": window.last_time}


def _policy(result: PolicyResult) -> dict[str, Any]:
    estimates: dict[str, Any] = {}
    diagnostics = None
    if result.evaluation is not None:
        for key, estimate in result.evaluation.items():
            estimates[key] = {
                "value": _number(estimate.value), "ci_low": _number(estimate.ci_low),
                "ci_high": _number(estimate.ci_high), "normal_low": _number(estimate.normal_low),
                "normal_high": _number(estimate.normal_high), "standard_error": _number(estimate.standard_error),
                "interval_method": estimate.interval_method, "clipped_share": _number(estimate.clipped_share),
                "warnings": list(estimate.warnings)}
        d = result.evaluation.diagnostics
        diagnostics = {
            "n_events": d.n_events, "effective_sample_size": _number(d.effective_sample_size),
            "max_importance_weight": _number(d.max_importance_weight),
            "mean_importance_weight": _number(d.mean_importance_weight),
            "support_deficiency": _number(d.support_deficiency), "support_source": d.support_source,
            "target_is_deterministic": d.target_is_deterministic, "logger_is_uniform": d.logger_is_uniform}
    return {"policy": result.policy, "label": result.label, "kind": result.kind, "version": result.version,
            "window": _window(result.window), "trained_on": _window(result.trained_on),
            "n_events": result.window.n_events, "estimates": estimates, "diagnostics": diagnostics,
            "warnings": list(result.warnings)}


def to_dict(report: EvaluationReport, *, mlflow_runs: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "format": JSON_FORMAT, "campaign": report.campaign, "data_dir": report.data_dir,
        "filter": asdict(report.log_filter), "n_events": report.n_events,
        "excluded": {**asdict(report.exclusions), "total": report.exclusions.total,
                     "reasons": list(report.exclusions.reasons())},
        "training_window": _window(report.training), "evaluation_window": _window(report.evaluation),
        "logged_value": _number(report.logged_value), "alpha": report.alpha, "n_bootstrap": report.n_bootstrap,
        "seed": report.seed, "train_fraction": report.train_fraction,
        "reward_model_folds": report.reward_model_folds, "mlflow_runs": list(mlflow_runs),
        "policies": [_policy(result) for result in report.policies],
    }


def to_json(report: EvaluationReport, *, mlflow_runs: tuple[str, ...] = ()) -> str:
    return json.dumps(to_dict(report, mlflow_runs=mlflow_runs), indent=2, sort_keys=False, allow_nan=False)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(window: Window) -> str:
    return f"{window.n_events} events, {_when(window.first_time)} .. {_when(window.last_time)}"


def print_report(report: EvaluationReport, console: Console, *, mlflow_runs: tuple[str, ...] = ()) -> None:
    """The evaluation as people read it: header, one table of estimates, diagnostics, warnings."""
    level = f"{100 * (1 - report.alpha):g}%"
    console.print(f"[bold]Offline evaluation[/bold] of campaign [bold]{report.campaign}[/bold] "
                  f"({report.n_events} logged decisions)")
    console.print(f"  training window:   {_describe(report.training)}")
    console.print(f"  evaluation window: {_describe(report.evaluation)}")
    console.print(f"  logged policy's mean reward on the evaluation window: {report.logged_value:.5f}")
    for reason in report.exclusions.reasons():
        console.print(f"  left out: {reason}")

    table = Table(title=f"Estimated policy value ({level} intervals, "
                        f"{'bootstrap ' + str(report.n_bootstrap) if report.n_bootstrap else 'normal'})")
    for name, justify in (("policy", "left"), ("estimator", "left"), ("value", "right"),
                          (f"{level} low", "right"), (f"{level} high", "right"), ("events", "right"),
                          ("ESS", "right"), ("max weight", "right")):
        table.add_column(name, justify=justify)
    for result in report.policies:
        if result.evaluation is None:
            table.add_row(result.label, "-", "-", "-", "-", "0", "-", "-", end_section=True)
            continue
        d = result.evaluation.diagnostics
        keys = list(result.evaluation)
        for i, key in enumerate(keys):
            estimate = result.evaluation[key]
            first = i == 0
            table.add_row(result.label if first else "", key, f"{estimate.value:.5f}", f"{estimate.ci_low:.5f}",
                          f"{estimate.ci_high:.5f}", str(d.n_events) if first else "",
                          f"{d.effective_sample_size:.0f}" if first else "",
                          f"{d.max_importance_weight:.3g}" if first else "", end_section=i == len(keys) - 1)
    console.print(table)
    for result in report.policies:
        for warning in result.warnings:
            console.print(f"[yellow]warning[/yellow] ({result.label}): {warning}")
    if mlflow_runs:
        console.print(f"recorded in MLflow: {len(mlflow_runs)} evaluation run(s)")
