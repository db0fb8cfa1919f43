"""``offerbandit lift``: incremental lift of the served policy over each campaign's holdout group."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, fail, log_location
from offerbandit.errors import OfferBanditError

if TYPE_CHECKING:
    from offerbandit.reports.lift import CampaignLift, LiftGroup, LiftReport

_COLUMNS = ("treated decisions", "treated customers", "treated mean", "holdout decisions", "holdout customers",
            "holdout mean", "lift", "95% interval")


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _cells(r: LiftReport) -> list[str]:
    interval = "-" if r.ci_low is None or r.ci_high is None else f"[{r.ci_low:.4g}, {r.ci_high:.4g}]"
    return [str(r.treated_decisions), str(r.treated_customers), _cell(r.treated_mean_reward),
            str(r.holdout_decisions), str(r.holdout_customers), _cell(r.holdout_mean_reward), _cell(r.lift),
            interval]


def _period(group: LiftGroup) -> str:
    from datetime import datetime, timezone

    if group.period_start is None or group.period_end is None:
        return "all"
    start, end = (datetime.fromtimestamp(t, timezone.utc) for t in (group.period_start, group.period_end))
    short = start.hour == 0 and end.hour == 0 and start.minute == 0 and end.minute == 0
    form = "%Y-%m-%d" if short else "%Y-%m-%d %H:%M"
    return f"{start.strftime(form)} - {end.strftime(form)}"


def _covers(item: CampaignLift) -> str:
    """The window the counted decisions span (older rows may be gone: retention, erasure)."""
    from datetime import datetime, timezone

    if item.first_decided_at is None or item.last_decided_at is None:
        return f"{item.report.campaign}: no decision counted yet (none whose reward window closed)"
    first, last = (datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                   for t in (item.first_decided_at, item.last_decided_at))
    return (f"{item.report.campaign}: covers decisions from {first} to {last} (what the log holds: retention "
            "and erasure remove older rows)")


def lift(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
    campaign: Annotated[Optional[str], typer.Option(help="Only this campaign.")] = None,
    by_version: Annotated[bool, typer.Option(
        "--by-version", help="Also per serving policy_version (the holdout of the same version's period).")] = False,
    every: Annotated[Optional[str], typer.Option(
        help="Also per period of decision time (aligned on UTC): e.g. 1d, 6h (also s, m, w).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object (the fields of the table).")] = False,
    config: ConfigFile = None,
) -> None:
    """Treated vs holdout mean reward per decision, their difference (lift) and its 95% interval
    (the customer, not the decision, is the unit). The configuration gives default rewards and reward windows.
    A decision counts once its reward window closed, whether or not a reward came earlier."""
    from offerbandit.reports.exploration import parse_period
    from offerbandit.reports.lift import campaign_lifts, lift_json
    from service.config import load_config
    from service.lift_runs import lift_settings

    where = log_location(data_dir, log_url)
    try:
        every_s = parse_period(every) if every is not None else None
    except OfferBanditError as exc:
        fail(f"--every: {exc}")
    try:
        lifts = campaign_lifts(where, lift_settings(load_config(config)), campaign=campaign,
                               by_version=by_version, every_s=every_s)
    except OfferBanditError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(lift_json(lifts))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    table = Table(title="Incremental lift over the holdout (mean reward per decision; 95% interval over customers)")
    for name in ("campaign", *_COLUMNS):
        table.add_column(name, justify="left" if name == "campaign" else "right")
    for item in lifts:
        table.add_row(item.report.campaign, *_cells(item.report))
    console.print(table)
    for item in lifts:
        console.print(_covers(item))
    if not by_version and every_s is None:
        return
    groups = Table(title="Per group: treated of one serving version and period against the holdout of the same")
    for name in ("campaign", "version", "period", *_COLUMNS):
        groups.add_column(name, justify="left" if name in ("campaign", "version", "period") else "right")
    for item in lifts:
        for group in item.groups:
            groups.add_row(item.report.campaign, "all" if group.policy_version is None else group.policy_version,
                           _period(group), *_cells(group.report))
    console.print(groups)
