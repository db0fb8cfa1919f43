"""The exploration report of a data directory: how much, where and at what cost the service explored,
computed from the decision log (see `offerbandit.reports.exposures` for every definition).

Exposures are the logged decisions that showed an offer: ``no_contact`` decisions and deferred decisions
never activated are not exposures. A deferred decision counts from its activation time, like in the
per-user history. An exposure's ``new_category`` is True when its offer's category (from the offer
snapshot logged with the decision) had not been shown to that customer within ``horizon_s`` before it,
in any campaign (one customer, one inbox); it is computed incrementally over the log in time order
(log order on ties), reading ``horizon_s`` of log before ``since`` so that the first reported exposures
know their customers' past. A reward is known once reported, or once the reward window closed and the
campaign's default reward was learned; otherwise it is None.

    exploration_report_from_log(data_dir)             -> ExplorationReport (all versions together)
    reports_by_version(data_dir)                      -> {policy_version: ExplorationReport}
    reports_over_time(data_dir, every_s=86400)        -> {period start (UTC, ISO 8601): ExplorationReport}
    render_table(reports), report_json(reports)       -> a rich Table, a JSON text
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

from rich.table import Table

from decision_log import open_log
from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from offerbandit.reports.exposures import ExplorationReport, ExposureRecord, exploration_report
from policies.history import HistoryConfig
from policies.sampler import HOLDOUT

#: The default horizon of "shown before": the per-user history's default horizon.
DEFAULT_HORIZON_S = HistoryConfig().horizon_s
#: The key of the whole log in `reports_by_version`-style mappings rendered together.
ALL_VERSIONS = "all"


@dataclass(frozen=True, slots=True)
class LoggedExposure:
    """One exposure with where it came from; ``candidates`` are the offer ids of the decision's offer set."""

    event_id: str
    campaign: str
    policy_version: str
    candidates: tuple[str, ...]
    exposure: ExposureRecord


def _check_options(since: float | None, last_n: int, horizon_s: float) -> None:
    if since is not None:
        check_scalar(since, "since")
    check_scalar(last_n, "last_n", int, low=1)
    check_scalar(horizon_s, "horizon_s", low=0, low_open=True)


def exposures_from_log(data_dir: Path | str, *, since: float | None = None,
                       horizon_s: float = DEFAULT_HORIZON_S) -> list[LoggedExposure]:
    """Every exposure the policy made at or after ``since`` (all of them when None), in time order; holdout
    contacts (the baseline served to the control group) only count in the customers' history."""
    _check_options(since, 1, horizon_s)
    # Deferred decisions are shown when activated, which may be after ``since`` although they were
    # decided earlier; their decisions are at most one reward window old, well inside the horizon.
    read_from = None if since is None else since - horizon_s
    with open_log(data_dir) as log:  # a data directory or a log URL (Path() would fold a URL's //)
        shown = sorted(log.exposures(read_from), key=lambda item: (item.when, item.seq))
        categories: dict[str, dict[str, str]] = {}  # offer set -> offer id -> category
        candidates: dict[str, tuple[str, ...]] = {}  # offer set -> its offer ids
        last_shown: dict[tuple[str, str], float] = {}  # (user, category) -> last time shown
        exposures: list[LoggedExposure] = []
        for item in shown:
            if item.offer_set not in categories:
                offers = log.offers(item.offer_set)
                categories[item.offer_set] = {o.id: o.category for o in offers}
                candidates[item.offer_set] = tuple(o.id for o in offers)
            category = categories[item.offer_set].get(item.offer_id, "")
            key = (item.user_key, category)
            previous = last_shown.get(key)
            last_shown[key] = item.when
            if since is not None and item.when < since or item.exploration == HOLDOUT:
                continue  # a holdout contact counts in the customer's history, not as the policy's exposure
            exposures.append(LoggedExposure(
                event_id=item.event_id, campaign=item.campaign, policy_version=item.policy_version,
                candidates=candidates[item.offer_set],
                exposure=ExposureRecord(user_key=item.user_key, when=item.when, offer_id=item.offer_id,
                                        category=category, format=item.format, time_slot=item.time_slot,
                                        exploration=item.exploration, reward=item.reward,
                                        new_category=previous is None or previous < item.when - horizon_s)))
    return exposures


def _report(exposures: list[LoggedExposure], last_n: int) -> ExplorationReport:
    """The report of these exposures; the catalogue is every offer that was a candidate of one of them."""
    catalogue = dict.fromkeys(oid for e in exposures for oid in e.candidates)
    return exploration_report([e.exposure for e in exposures], catalogue=list(catalogue), last_n=last_n)


def _selected(exposures: list[LoggedExposure], campaign: str | None, policy_version: str | None
              ) -> list[LoggedExposure]:
    return [e for e in exposures if (campaign is None or e.campaign == campaign)
            and (policy_version is None or e.policy_version == policy_version)]


def exploration_report_from_log(data_dir: Path | str, *, campaign: str | None = None,
                                policy_version: str | None = None, since: float | None = None, last_n: int = 10,
                                horizon_s: float = DEFAULT_HORIZON_S) -> ExplorationReport:
    """The exploration report of the exposures shown at or after ``since`` (epoch seconds; None: all),
    in ``campaign`` and served by ``policy_version`` (None: all). "New category" always looks at the
    customer's exposures in every campaign and version."""
    _check_options(since, last_n, horizon_s)
    exposures = exposures_from_log(data_dir, since=since, horizon_s=horizon_s)
    return _report(_selected(exposures, campaign, policy_version), last_n)


def reports_by_version(data_dir: Path | str, *, campaign: str | None = None, since: float | None = None,
                       last_n: int = 10, horizon_s: float = DEFAULT_HORIZON_S) -> Mapping[str, ExplorationReport]:
    """One report per policy version (in order of first exposure), over the same exposures as
    `exploration_report_from_log`; versions without exposures are left out."""
    _check_options(since, last_n, horizon_s)
    return version_reports(_selected(exposures_from_log(data_dir, since=since, horizon_s=horizon_s), campaign, None),
                           last_n)


def version_reports(exposures: Sequence[LoggedExposure], last_n: int = 10) -> Mapping[str, ExplorationReport]:
    """`reports_by_version` of exposures already read (from `exposures_from_log`)."""
    return MappingProxyType({version: _report(items, last_n) for version, items in _by_version(exposures).items()})


def _by_version(exposures: Sequence[LoggedExposure]) -> dict[str, list[LoggedExposure]]:
    by_version: dict[str, list[LoggedExposure]] = {}
    for exposure in exposures:
        by_version.setdefault(exposure.policy_version, []).append(exposure)
    return by_version


#: Units of `parse_period` ("90" alone is seconds).
_PERIOD_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_PERIOD = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


def parse_period(text: str) -> float:
    """Seconds in a period written ``90``, ``90s``, ``15m``, ``6h``, ``1d`` or ``1w`` (> 0)."""
    match = _PERIOD.fullmatch(text) if isinstance(text, str) else None
    seconds = float(match.group(1)) * _PERIOD_UNITS[match.group(2) or "s"] if match else 0.0
    if not match or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInput(f"period must be a positive number with an optional unit s, m, h, d or w "
                           f"(e.g. 1d, 6h), got {text!r}", field="every")
    return seconds


#: The shortest period of `reports_over_time` (labels are written to the millisecond).
MIN_PERIOD_S = 0.001


def _period_label(start: float, every_s: float) -> str:
    """The period's start in UTC, ISO 8601, to the minute (to the second or millisecond for shorter periods)."""
    spec = "minutes" if every_s >= 60 else "seconds" if every_s >= 1 else "milliseconds"
    moment = datetime.fromtimestamp(round(start, 3), tz=timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec=spec) + "Z"


def reports_over_time(data_dir: Path | str, *, every_s: float, campaign: str | None = None,
                      policy_version: str | None = None, since: float | None = None, last_n: int = 10,
                      horizon_s: float = DEFAULT_HORIZON_S) -> Mapping[str, ExplorationReport]:
    """One report per period of ``every_s`` seconds (periods aligned on the epoch, so ``every_s`` =
    86400 gives UTC days), keyed by the period's start and in time order; periods without exposures
    are left out. The exposures are those of `exploration_report_from_log`, and "new category" still
    looks at the customer's whole past, not only at the period; the diversity metric counts each
    customer's last ``last_n`` contacts within the period."""
    _check_options(since, last_n, horizon_s)
    _check_period(every_s)
    selected = _selected(exposures_from_log(data_dir, since=since, horizon_s=horizon_s), campaign, policy_version)
    return MappingProxyType({_period_label(start, every_s): report
                             for start, report in period_reports(selected, every_s, last_n)})


def period_reports(exposures: Sequence[LoggedExposure], every_s: float, last_n: int = 10
                   ) -> list[tuple[float, ExplorationReport]]:
    """(period start, report) for each period of ``every_s`` seconds holding some of ``exposures``
    (already read, in time order), in time order."""
    _check_period(every_s)
    by_period: dict[float, list[LoggedExposure]] = {}
    for exposure in exposures:
        start = math.floor(exposure.exposure.when / every_s) * every_s
        by_period.setdefault(start, []).append(exposure)
    return [(start, _report(items, last_n)) for start, items in by_period.items()]


def _check_period(every_s: float) -> None:
    check_scalar(every_s, "every_s", low=MIN_PERIOD_S)


# Columns of the table: (field, header, format).
_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("n_decisions", "exposures", "d"),
    ("n_customers", "customers", "d"),
    ("share_exploit", "exploit", "%"),
    ("share_explore", "explore", "%"),
    ("share_outside_history", "outside history", "%"),
    ("catalogue_coverage", "coverage", ".3f"),
    ("distinct_categories_last_n", "categories in last n", ".2f"),
    ("discoveries", "discoveries", "d"),
    ("discovery_rate_per_novel_draw", "discoveries / novel draw", ".3f"),
    ("mean_reward_exploit", "reward exploit", ".4f"),
    ("mean_reward_outside_history", "reward outside", ".4f"),
    ("exploration_cost", "cost", ".4f"),
    ("exposure_gini", "gini", ".3f"),
)


def _cell(value: float | int, fmt: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if fmt == "%":
        return f"{100.0 * value:.1f}%"
    return format(value, fmt)


def _as_mapping(reports: ExplorationReport | Mapping[str, ExplorationReport]) -> Mapping[str, ExplorationReport]:
    if isinstance(reports, ExplorationReport):
        return {ALL_VERSIONS: reports}
    if not isinstance(reports, Mapping) or not all(isinstance(r, ExplorationReport) for r in reports.values()):
        raise InvalidInput("reports must be an ExplorationReport or a mapping of names to them", field="reports")
    return reports


def render_table(reports: ExplorationReport | Mapping[str, ExplorationReport], *,
                 title: str = "Exploration", key_header: str = "policy version") -> Table:
    """A rich table, one row per report (per policy version from `reports_by_version`, per period from
    `reports_over_time` with ``key_header="period"``); undefined values (NaN) show as ``-``."""
    rows = _as_mapping(reports)
    table = Table(title=title)
    table.add_column(key_header, no_wrap=True)
    for _, header, _ in _COLUMNS:
        table.add_column(header, justify="right")
    for name, report in rows.items():
        table.add_row(name, *(_cell(getattr(report, field), fmt) for field, _, fmt in _COLUMNS))
    return table


def report_dict(report: ExplorationReport) -> dict[str, float | int | None]:
    """The report's fields by name; NaN (undefined) becomes None."""
    return {name: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for name, value in asdict(report).items()}


def report_json(reports: ExplorationReport | Mapping[str, ExplorationReport], *, indent: int | None = 2) -> str:
    """Strict JSON (no NaN): one object for one report, or an object of objects keyed by name."""
    if isinstance(reports, ExplorationReport):
        return json.dumps(report_dict(reports), indent=indent, allow_nan=False)
    rows = _as_mapping(reports)
    return json.dumps({name: report_dict(r) for name, r in rows.items()}, indent=indent, allow_nan=False)
