"""``offerbandit demo``: the whole loop on simulated customers, with a summary."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, fail
from offerbandit.errors import OfferBanditError

def _default_demo_dir() -> Path:
    return DEFAULT_DATA_DIR / time.strftime("demo-%Y%m%d-%H%M%S")


def demo(
    data_dir: Annotated[Optional[Path], typer.Option(
        "--data-dir", help="Where the demo writes its log and MLflow store (default: a new folder under "
                           "./offerbandit-data).")] = None,
    decisions: Annotated[int, typer.Option(help="Decisions while the policy learns online.")] = 12000,
    eval_decisions: Annotated[int, typer.Option(help="Decisions in the evaluation window.")] = 4000,
    customers: Annotated[Optional[int], typer.Option(
        help="Simulated customers (default: 250 on the individual world, 3000 on the segment world).")] = None,
    world: Annotated[str, typer.Option(
        help="individual: each customer's own favourite category, format and slot (the segment hints at "
             "it a quarter of the time); segment: preferences mostly from the context a marketer sees.")] = "individual",
    personal_features: Annotated[Optional[bool], typer.Option(
        "--personal-features/--no-personal-features",
        help="Per-customer features (default: on for the individual world, off for the segment world).")] = None,
    lockstep: Annotated[bool, typer.Option(
        help="Wait for the learner after each batch (and each reward for the one before): a repeatable run "
             "whatever the machine's load; by default learning runs beside serving and lags when the machine is "
             "busy.")] = False,
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
                              eval_decisions=eval_decisions, customers=customers, seed=seed,
                              world=world, personal_features=personal_features, lockstep=lockstep)
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
