"""The demo's printed summary (rich tables), kept apart from the demo's logic."""
from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from offerbandit.demo.run import DemoSummary


def print_summary(summary: DemoSummary, console: Console) -> None:
    console.print(f"\n[bold]offerbandit demo[/bold]: {summary.decisions} decisions through gRPC "
                  f"({summary.learning_decisions} learning online, {summary.eval_decisions} in the evaluation "
                  f"window) in {summary.seconds:.0f}s, {summary.customers} simulated customers, "
                  f"{summary.world} world, per-customer features {'on' if summary.personal_features else 'off'}\n")
    live = Table(title="Mean response per decision, second half of the run (true probabilities, same requests)")
    live.add_column("policy")
    live.add_column("response rate", justify="right")
    live.add_column("± s.e.", justify="right")
    learned = summary.live[0].value
    live.add_column("offerbandit vs it", justify="right")
    for value in summary.live:
        ratio = "" if value is summary.live[0] else f"{learned / value.value:.2f}x" if value.value else ""
        live.add_row(value.name, f"{value.value:.4f}", f"{value.stderr:.4f}", ratio)
    console.print(live)
    console.print(f"offerbandit reaches [bold]{summary.fraction_of_oracle:.0%}[/bold] of the oracle "
                  "(which knows every customer's true response probabilities).\n")
    explore = Table(title="How decisions were drawn")
    explore.add_column("kind")
    explore.add_column("share", justify="right")
    for kind, share in summary.exploration_share.items():
        explore.add_row(kind, f"{share:.1%}")
    console.print(explore)
    console.print(f"Latent interests discovered (a positive response in a category the customer never showed "
                  f"interest in before): {summary.latent_discoveries}\n")
    ope = Table(title="Offline estimate on the evaluation window vs the simulator's true value")
    for column in ("policy", "estimator", "estimate", "95% interval", "true value", "covered", "ESS"):
        ope.add_column(column, justify="right" if column not in ("policy", "estimator") else "left")
    for check in summary.ope:
        ope.add_row(check.policy, check.estimator, f"{check.estimate:.4f}", f"[{check.ci_low:.4f}, {check.ci_high:.4f}]",
                    f"{check.true_value:.4f}", "yes" if check.covered else "[red]no[/red]",
                    f"{check.effective_sample_size:.0f}")
    console.print(ope)
    warned = sorted({w for check in summary.ope for w in check.warnings})
    for warning in warned:
        console.print(f"[yellow]diagnostic:[/yellow] {warning}")
    print_lift(summary, console)
    console.print(f"\nPolicy versions that served: {', '.join(summary.versions)}; champion now "
                  f"[bold]{summary.champion}[/bold], challenger [bold]{summary.challenger or '-'}[/bold] "
                  f"(shadow-scored on {summary.shadow_scored} live decisions).")
    for note in summary.notes:
        console.print(f"note: {note}")
    if summary.tracking_uri:
        console.print("\nCompare the versions in the MLflow UI:\n"
                      f"  .venv/bin/mlflow ui --backend-store-uri {summary.tracking_uri} --port 5000\n"
                      "  then open http://127.0.0.1:5000 -> Models -> offerbandit-default, or Experiments -> "
                      "offerbandit")
    console.print(f"Everything the demo wrote is under {summary.data_dir}")


def _num(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else (f"{value:+.4f}" if signed else f"{value:.4f}")


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"


def print_lift(summary: DemoSummary, console: Console) -> None:
    """The randomised proof: the treated against the control group, over the run and per version."""
    lift = summary.lift
    table = Table(box=box.SIMPLE_HEAD, title=f"Lift over the holdout ({lift.holdout_share:.0%} of customers, served "
                        f"{'the mass-marketing arm' if lift.holdout_treatment == 'baseline' else 'nothing'}; "
                        "decisions, mean reward per decision, 95% interval over customers)")
    for column in ("version", "treated", "mean", "holdout", "mean", "lift", "95% interval"):
        table.add_column(column, justify="left" if column == "version" else "right")
    for label, r in [(g.policy_version or "", g.report) for g in lift.by_version] + [("[bold]all[/bold]",
                                                                                      lift.overall)]:
        table.add_row(label, str(r.treated_decisions), _num(r.treated_mean_reward), str(r.holdout_decisions),
                      _num(r.holdout_mean_reward), _num(r.lift, True), _interval(r.ci_low, r.ci_high))
    console.print(table)
    r = lift.overall
    console.print(f"offerbandit's lift over what the control group got: [bold]{_num(r.lift, True)}[/bold] "
                  f"{_interval(r.ci_low, r.ci_high)} reward per decision (each version's MLflow run carries "
                  "its own).\n")

