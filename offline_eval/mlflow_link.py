"""Record an evaluation in MLflow: one evaluation run per evaluated policy, with the interval plot.

Registry versions (``champion``, ``v3``, ...) go through ``PolicyRegistry.log_evaluation`` (the run
is linked to the version both ways). Baselines and counterfactual candidates have no version: they
get a plain run in the same experiment, tagged ``offerbandit.kind = evaluation``.

Metrics per run: ``<estimator>.value``, ``<estimator>.ci_low``, ``<estimator>.ci_high`` for each
estimator, ``ess``, ``max_weight``, ``n_events`` and ``logged_value``; the figure
``figures/estimates.png`` shows that policy's estimates with intervals against the logged policy's
mean reward. MLflow is imported only when a run is written.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from offline_eval.runner import EvaluationReport, PolicyResult
from offerbandit.errors import OfferBanditError
from offerbandit.errors import RegistryUnavailable
from policy_registry.registry import PolicyRegistry, retry_when_locked
from offerbandit.reports.plots import EstimateInterval, plot_estimates


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
                try:
                    run_ids.append(_plain_run(registry, report, result, metrics, figure))
                except OfferBanditError:
                    raise
                except Exception as exc:
                    raise RegistryUnavailable(f"cannot record the evaluation of {result.label}: {exc}") from exc
    return tuple(run_ids)


def _experiment_id(client, registry: PolicyRegistry) -> str:
    config = registry.config
    experiment = retry_when_locked(lambda: client.get_experiment_by_name(config.experiment_name))
    if experiment is not None:
        return experiment.experiment_id
    location = (Path(config.artifact_root) / config.experiment_name).as_uri()
    try:
        return retry_when_locked(lambda: client.create_experiment(config.experiment_name,
                                                                  artifact_location=location))
    except Exception:  # noqa: BLE001 - another writer created it meanwhile: read it back
        experiment = retry_when_locked(lambda: client.get_experiment_by_name(config.experiment_name))
        if experiment is None:
            raise
        return experiment.experiment_id


def _plain_run(registry: PolicyRegistry, report: EvaluationReport, result: PolicyResult,
               metrics: dict[str, float], figure: Path | None) -> str:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri = registry.config.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = _experiment_id(client, registry)
    tags = {"offerbandit.kind": "evaluation", "campaign": report.campaign, "policy": result.policy,
            "policy_kind": result.kind, "registered_model": registry.model_name(report.campaign)}
    run = retry_when_locked(lambda: client.create_run(
        experiment_id, run_name=f"evaluation {report.campaign} {result.policy}", tags=tags))
    run_id = run.info.run_id
    now_ms = int(time.time() * 1000)
    batch = [Metric(key, value, now_ms, 0) for key, value in metrics.items()]
    retry_when_locked(lambda: client.log_batch(run_id, metrics=batch))
    if figure is not None:
        retry_when_locked(lambda: client.log_artifact(run_id, str(figure), "figures"))
    retry_when_locked(lambda: client.set_terminated(run_id, "FINISHED"))
    return run_id
