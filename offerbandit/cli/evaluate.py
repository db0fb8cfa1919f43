"""``offerbandit eval``: offline estimates of policies on the logged traffic."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, fail, log_location
from offerbandit.errors import OfferBanditError

def eval_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
    parquet: Annotated[Optional[Path], typer.Option(
        "--parquet", help="Evaluate on an `offerbandit export --format parquet --out DIR` directory instead of a "
                          "log (every policy and estimator works on it; champion/versions still come from "
                          "--data-dir's MLflow store or MLFLOW_TRACKING_URI).")] = None,
    policy: Annotated[list[str], typer.Option(
        "--policy", help="Target policy (repeatable): champion, challenger, an MLflow version number, uniform, "
                         "best_single_arm, per_segment_greedy, or counterfactual:<name> (trained on the earlier "
                         "part of the log, evaluated on the later part).")] = ["champion"],
    campaign: Annotated[Optional[str], typer.Option(help="Campaign to evaluate (default: the log's only one).")] = None,
    estimator: Annotated[Optional[list[str]], typer.Option(
        "--estimator", help="Estimator (repeatable): replay, ipw, snipw, dm, dr, sndr, switch_dr, dr_os. "
                            "Default: all that apply.")] = None,
    alpha: Annotated[float, typer.Option(help="1 - confidence level of the intervals.")] = 0.05,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples (0: normal intervals).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the reward model.")] = 0,
    train_fraction: Annotated[float, typer.Option(
        help="Share of the log (oldest first) that log-trained targets learn from; the rest is evaluated.")] = 0.5,
    since: Annotated[Optional[float], typer.Option(help="Only decisions at or after this unix time.")] = None,
    until: Annotated[Optional[float], typer.Option(help="Only decisions before this unix time.")] = None,
    policy_version: Annotated[Optional[str], typer.Option(
        help="Only decisions served by this version.")] = None,
    config: ConfigFile = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not log the evaluation to MLflow.")] = False,
) -> None:
    """Estimate offline how each policy would have done on the logged traffic, with intervals and
    diagnostics; logged to MLflow as evaluation runs."""
    from offerbandit.reports.evaluation_runs import run_eval_command
    from service.config import ServiceConfig, load_config
    from service.offline_settings import offline_settings

    if log_url is not None and parquet is not None:
        fail("--log-url and --parquet are alternatives: evaluate on a log or on an export")
    source = parquet if parquet is not None else (None if log_url is None else log_location(data_dir, log_url))
    if parquet is not None and (not parquet.is_dir() or not any(parquet.glob("*.parquet"))):
        fail(f"--parquet {parquet} is not a directory of .parquet files (write one with "
             "`offerbandit export --format parquet --out DIR`)")
    try:
        settings = offline_settings(load_config(config) if config else ServiceConfig())
        code = run_eval_command(data_dir, policy, campaign=campaign, json_out=json_out, estimators=estimator,
                                alpha=alpha, n_bootstrap=bootstrap, seed=seed, log_to_mlflow=not no_mlflow,
                                train_fraction=train_fraction, since=since, until=until,
                                policy_version=policy_version, settings=settings, source=source)
    except OfferBanditError as exc:
        fail(str(exc))
    raise typer.Exit(code)
