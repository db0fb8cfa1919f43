"""``offerbandit eval``'s work: evaluate policies offline on the decision log, record the evaluation
in MLflow (one run per policy, with its interval plot) and print it as a table or JSON.

Registry versions (``champion``, ``v3``, ...) are recorded through ``PolicyRegistry.log_evaluation``
(the run is linked to the version both ways). Baselines and counterfactual candidates have no
version: they get an unversioned evaluation run in the same experiment. Both carry the metrics
``<estimator>.value``, ``<estimator>.ci_low``, ``<estimator>.ci_high`` for each estimator, ``ess``,
``max_weight``, ``n_events`` and ``logged_value``; the figure ``figures/estimates.png`` shows that
policy's estimates with intervals against the logged policy's mean reward. MLflow is imported only
when a run is written.
"""
from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from offline_eval import report as render
from offline_eval.evaluation import DEFAULT_N_BOOTSTRAP
from offline_eval.results import EvaluationReport, PolicyResult
from offline_eval.runner import DEFAULT_TRAIN_FRACTION, evaluate_policies
from offline_eval.settings import OfflineSettings
from offline_eval.targets import registry_for
from offerbandit.reports.plots import EstimateInterval, plot_estimates
from policy_registry import PolicyRegistry

__all__ = ["log_report", "policy_metrics", "run_eval_command"]


def policy_metrics(report: EvaluationReport, result: PolicyResult) -> dict[str, float]:
    """The metrics of one policy's run (non-finite values are left out)."""
    metrics: dict[str, float] = {"n_events": float(result.window.n_events), "logged_value": report.logged_value}
    if result.evaluation is not None:
        for key, estimate in result.evaluation.items():
            metrics[f"{key}.value"] = estimate.value
            metrics[f"{key}.ci_low"] = estimate.ci_low
            metrics[f"{key}.ci_high"] = estimate.ci_high
        d = result.evaluation.diagnostics
        metrics["ess"] = d.effective_sample_size
        metrics["max_weight"] = d.max_importance_weight
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


def _figure(report: EvaluationReport, result: PolicyResult, folder: Path) -> Path | None:
    folder.mkdir(parents=True)
    if result.evaluation is None:
        return None
    intervals = [EstimateInterval(result.label, key, e.value, min(e.ci_low, e.value), max(e.ci_high, e.value))
                 for key, e in result.evaluation.items()
                 if all(math.isfinite(x) for x in (e.value, e.ci_low, e.ci_high))]
    if not intervals:
        return None
    return plot_estimates(intervals, folder / "estimates.png",
                          reference=report.logged_value,
                          title=f"{report.campaign}: {result.label} ({result.window.n_events} events)")


def log_report(report: EvaluationReport, registry: PolicyRegistry) -> tuple[str, ...]:
    """One MLflow run per policy of ``report``; returns the run ids in policy order."""
    run_ids = []
    with tempfile.TemporaryDirectory(prefix="offerbandit-eval-") as staging:
        for index, result in enumerate(report.policies):
            figure = _figure(report, result, Path(staging, str(index)))
            metrics = policy_metrics(report, result)
            figures = {"estimates": figure} if figure is not None else {}
            if result.version is not None:
                run_ids.append(registry.log_evaluation(report.campaign, result.version, metrics, figures))
            else:
                run_ids.append(registry.log_unversioned_evaluation(
                    report.campaign, result.policy, result.kind, metrics, figures))
    return tuple(run_ids)


def run_eval_command(
    data_dir: str | Path,
    policies: Sequence[str],
    *,
    campaign: str | None = None,
    json_out: bool = False,
    estimators: Sequence[str] | None = None,
    alpha: float = 0.05,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    log_to_mlflow: bool = True,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    since: float | None = None,
    until: float | None = None,
    policy_version: str | None = None,
    settings: OfflineSettings | None = None,
    out: TextIO | None = None,
    source: str | Path | None = None,
) -> int:
    """``offerbandit eval``: evaluate policies on the decision log and print the result; returns 0.

    Options (CLI flag -> argument):

    - ``--data-dir D``: the server's data directory (decision log ``D/decisions.db``; MLflow store
      ``D/mlflow.db`` unless ``MLFLOW_TRACKING_URI`` is set).
    - ``--log-url URL`` / ``--parquet DIR`` (``source``): read the decisions from that log, or from an
      ``export --format parquet`` directory, instead of ``D``'s own log (``D`` still locates MLflow).
    - ``--policy NAME`` (repeatable, at least one): ``champion``, ``challenger`` or any alias; a
      version ``3``/``v3``; a baseline ``uniform``, ``best_single_arm``, ``per_segment_greedy``;
      ``counterfactual:<vw|uniform|best_single_arm|per_segment_greedy>`` (trained on the training window).
    - ``--campaign C``: which campaign (default: the log's only campaign).
    - ``--estimator E`` (repeatable): replay, ipw, snipw, dm, dr, sndr, switch_dr, dr_os (default: all
      that apply).
    - ``--alpha A``: interval level 1 - A (default 0.05). ``--bootstrap N``: bootstrap resamples
      (0: normal intervals). ``--seed S``: seeds bootstrap and trained policies.
    - ``--train-fraction F``: share of the log (oldest first) used to train baselines and
      counterfactual policies; the rest is evaluated (default 0.5).
    - ``--since T`` / ``--until T`` (unix seconds), ``--policy-version V``: filter the log.
    - ``--config FILE``: the service config, passed as ``settings`` (campaign default reward and
      policy parameters; see ``service.offline_settings``).
    - ``--json``: print one JSON document (stable keys) instead of the table.
    - ``--no-mlflow``: do not record the evaluation in MLflow (recorded by default when the data dir
      has an MLflow store or MLFLOW_TRACKING_URI is set).

    User mistakes raise ``InvalidInput`` / ``NotFound`` (the CLI prints them as one line). Progress
    goes to stderr; the table or JSON to ``out`` (stdout).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    stream = out or sys.stdout
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = evaluate_policies(
            data_dir, policies, campaign=campaign, estimators=estimators, alpha=alpha, n_bootstrap=n_bootstrap,
            seed=seed, train_fraction=train_fraction, since=since, until=until, policy_version=policy_version,
            settings=settings, progress=progress, source=source)
    run_ids: tuple[str, ...] = ()
    if log_to_mlflow:
        registry = registry_for(Path(data_dir))
        if registry is not None:
            run_ids = log_report(report, registry)
    if json_out:
        stream.write(render.to_json(report, mlflow_runs=run_ids) + "\n")
    else:
        render.print_report(report, Console(file=stream, width=max(Console(file=stream).width, 100)),
                            mlflow_runs=run_ids)
    return 0
