"""``offerbandit exploration``: exploration outside each customer's history, from the log."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, DataDir, LogUrl, fail, log_location
from offerbandit.errors import OfferBanditError

def exploration(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
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
    where = log_location(data_dir, log_url)
    try:
        if every_s is not None:
            reports = report.reports_over_time(where, every_s=every_s, campaign=campaign,
                                               policy_version=version, since=since, last_n=last_n)
        elif by_version:
            reports = report.reports_by_version(where, campaign=campaign, since=since, last_n=last_n)
        else:
            reports = {"all": report.exploration_report_from_log(where, campaign=campaign, since=since,
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
