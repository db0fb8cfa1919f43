"""Commands beyond serve/export, registered on the shared Typer app: demo, eval, promote, rollback,
exploration."""
from __future__ import annotations

import getpass
import logging
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from offerbandit.errors import OfferBanditError
from offerbandit.cli import DEFAULT_DATA_DIR, ConfigFile, DataDir, app, fail


def _default_demo_dir() -> Path:
    return DEFAULT_DATA_DIR / time.strftime("demo-%Y%m%d-%H%M%S")


@app.command()
def demo(
    data_dir: Annotated[Optional[Path], typer.Option(
        "--data-dir", help="Where the demo writes its log and MLflow store (default: a new folder under "
                           "./offerbandit-data).")] = None,
    decisions: Annotated[int, typer.Option(help="Decisions while the policy learns online.")] = 12000,
    eval_decisions: Annotated[int, typer.Option(help="Decisions in the evaluation window.")] = 4000,
    customers: Annotated[int, typer.Option(help="Simulated customers.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 7,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the whole system on simulated customers: serve, learn, version, evaluate, summarise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from offerbandit.demo.run import DemoOptions, run_demo
    from offerbandit.demo.summary import print_summary

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    console = Console(stderr=json_out)
    try:
        options = DemoOptions(data_dir=data_dir or _default_demo_dir(), decisions=decisions,
                              eval_decisions=eval_decisions, customers=customers, seed=seed)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("starting the server", total=decisions + eval_decisions)

            def progress(phase: str, done: int, total: int) -> None:
                bar.update(task, description=phase, completed=done, total=total)

            summary = run_demo(options, progress=progress)
    except OfferBanditError as exc:
        fail(str(exc))
    (options.data_dir / "demo-summary.json").write_text(summary.to_json())
    if json_out:
        typer.echo(summary.to_json())
    else:
        print_summary(summary, console)


@app.command()
def rollback(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    campaign: Annotated[str, typer.Option(help="Campaign whose champion to roll back.")] = "default",
    why: Annotated[str, typer.Option(help="Reason, recorded on the version.")] = "manual rollback",
    who: Annotated[str, typer.Option(help="Who, recorded on the version (default: the OS user).")] = "",
) -> None:
    """Return `champion` to the previous champion (a running server swaps it in within seconds)."""
    from policy_registry import PolicyRegistry, RegistryConfig

    try:
        result = PolicyRegistry(RegistryConfig.for_data_dir(data_dir)).rollback(
            campaign, who=who or getpass.getuser(), why=why)
    except OfferBanditError as exc:
        fail(str(exc))
    typer.echo(f"{campaign}: champion {result.champion_before} -> {result.champion_after} ({result.reason})")


@app.command()
def exploration(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    campaign: Annotated[Optional[str], typer.Option(help="Only this campaign.")] = None,
    by_version: Annotated[bool, typer.Option("--by-version", help="One report per policy version.")] = False,
    since: Annotated[Optional[float], typer.Option(help="Only decisions at or after this unix time.")] = None,
    every: Annotated[Optional[str], typer.Option(
        help="One report per period (90s, 15m, 6h, 1d, 1w; aligned on UTC), to follow the metrics over time.")] = None,
    version: Annotated[Optional[str], typer.Option(help="With --every: only this policy version.")] = None,
    last_n: Annotated[int, typer.Option(help="Contacts per customer for the diversity metric.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Exploration outside each customer's history, coverage, diversity, discovery, cost, Gini."""
    from rich.console import Console

    from offerbandit.reports import exploration as report

    if every is not None and by_version:
        fail("--every and --by-version are alternatives: use --every with --version to follow one version")
    if version is not None and every is None:
        fail("--version selects a policy version for --every; use --by-version to compare versions")
    try:
        every_s = None if every is None else report.parse_period(every)
    except OfferBanditError as exc:
        fail(f"--every: {exc}")
    try:
        if every_s is not None:
            reports = report.reports_over_time(data_dir, every_s=every_s, campaign=campaign,
                                               policy_version=version, since=since, last_n=last_n)
        elif by_version:
            reports = report.reports_by_version(data_dir, campaign=campaign, since=since, last_n=last_n)
        else:
            reports = {"all": report.exploration_report_from_log(data_dir, campaign=campaign, since=since,
                                                                 last_n=last_n)}
    except OfferBanditError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(report.report_json(reports))
        return
    if every is not None:  # one row per period
        title = f"Exploration outside each customer's history, every {every}" + (f", version {version}" if version else "")
        Console(width=max(Console().width, 200)).print(report.render_table(reports, title=title, key_header="period (UTC)"))
        return
    from rich.table import Table

    table = Table(title="Exploration outside each customer's history")  # one column per version
    table.add_column("metric", no_wrap=True)
    rows = {name: report.report_dict(r) for name, r in reports.items()}
    for name in rows:
        table.add_column(f"v{name}" if name.isdigit() else name, justify="right")
    for metric in next(iter(rows.values()), {}):
        cells = [rows[name][metric] for name in rows]
        table.add_row(metric, *("-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
                                for v in cells))
    Console(width=max(Console().width, 132)).print(table)


@app.command("eval")
def eval_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
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

    try:
        settings = offline_settings(load_config(config) if config else ServiceConfig())
        code = run_eval_command(data_dir, policy, campaign=campaign, json_out=json_out, estimators=estimator,
                                alpha=alpha, n_bootstrap=bootstrap, seed=seed, log_to_mlflow=not no_mlflow,
                                train_fraction=train_fraction, since=since, until=until,
                                policy_version=policy_version, settings=settings)
    except OfferBanditError as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="MLflow version number to make champion.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    campaign: Annotated[str, typer.Option(help="Campaign.")] = "default",
    force: Annotated[bool, typer.Option("--force", help="Skip the offline-evaluation gate.")] = False,
    estimator: Annotated[str, typer.Option(help="Estimator the gate compares.")] = "snipw",
    min_gain: Annotated[float, typer.Option(help="Required gain of the candidate's estimate over the champion's.")] = 0.0,
    why: Annotated[str, typer.Option(help="Reason, recorded on the version.")] = "manual promotion",
    who: Annotated[str, typer.Option(help="Who, recorded on the version (default: the OS user).")] = "",
) -> None:
    """Move `champion` to VERSION if its offline estimate beats the current champion's (or --force)."""
    from offline_eval.gate import offline_gate
    from policy_registry import PolicyRegistry, RegistryConfig
    from service.config import ServiceConfig
    from service.offline_settings import offline_settings

    try:
        registry = PolicyRegistry(RegistryConfig.for_data_dir(data_dir))
        gate = None if force else offline_gate(data_dir, campaign, estimator=estimator, min_gain=min_gain,
                                               settings=offline_settings(ServiceConfig()))
        result = registry.promote(campaign, version, gate=gate, force=force, who=who or getpass.getuser(), why=why)
    except OfferBanditError as exc:
        fail(str(exc))
    if not result.promoted:
        fail(f"not promoted: {result.reason}", code=1)
    typer.echo(f"{campaign}: champion {result.champion_before} -> {result.champion_after} ({result.reason})")
