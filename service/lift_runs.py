"""Lift on each version's MLflow run, recorded by the process that publishes checkpoints, never on a request.

After a checkpoint tick (``RegistryLink``'s checkpoint thread, in ``serve`` with the embedded log and in
``learn`` on a shared one) the recorder reads each campaign's lift by serving version from the log
(`offerbandit.reports.lift`: decisions whose windows closed, the holdout of the same version) and, for every
registered version whose numbers changed since it last recorded them, logs them on the version's own run
(`offerbandit.reports.lift_view`: metrics, description, a chart of every version's lift). At most once per
``min_interval_s`` per campaign (the server passes ``checkpoint_every_seconds``), and no more often than ten
times the last recording took: it reads the campaign's whole log, one pass over its decisions (about 20 us a
decision on two busy cores: 20 s for a million), so on a large log it keeps to a tenth of the checkpoint
thread's time.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from decision_log import DecisionLog
from offerbandit.errors import NotFound
from offerbandit.reports.lift import LiftReport, LiftSettings, log_lifts
from offerbandit.reports.lift_view import lift_description, lift_metrics, plot_lift_by_version
from policy_registry import PolicyRegistry
from service.config import ServiceConfig

__all__ = ["LiftRecorder", "lift_settings"]

log = logging.getLogger("offerbandit.lift")


def lift_settings(config: ServiceConfig) -> LiftSettings:
    """What lift reads of the configuration: default rewards, ranges and reward windows of each campaign."""
    return LiftSettings(config.reward_defaults(),
                        {name: c.reward_window_seconds for name, c in config.campaigns.items()},
                        {name: dict(c.reward_windows) for name, c in config.campaigns.items()})


class LiftRecorder:
    """Records each version's lift on its run; the figures are written under ``out_dir``."""

    def __init__(self, settings: LiftSettings, out_dir: Path, *, min_interval_s: float = 60.0) -> None:
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.min_interval_s = min_interval_s
        self._recorded: dict[tuple[str, str], LiftReport] = {}
        self._last: dict[str, float] = {}
        self._took: dict[str, float] = {}  # how long the campaign's last recording took (seconds)
        self._lock = threading.Lock()  # the checkpoint thread and an explicit call (the demo's) take turns

    def due(self, campaign: str, now: float) -> bool:
        interval = max(self.min_interval_s, 10.0 * self._took.get(campaign, 0.0))
        return now - self._last.get(campaign, float("-inf")) >= interval

    def record(self, log_: DecisionLog, registry: PolicyRegistry, campaign: str, *,
               now: float | None = None) -> dict[str, str]:
        """Log the lift of every registered version of ``campaign`` whose numbers changed; version -> run id."""
        with self._lock:
            started = time.monotonic()
            try:
                return self._record(log_, registry, campaign, time.time() if now is None else now)
            finally:
                self._took[campaign] = time.monotonic() - started

    def _record(self, log_: DecisionLog, registry: PolicyRegistry, campaign: str, now: float) -> dict[str, str]:
        self._last[campaign] = now
        (lift,) = log_lifts(log_, self.settings, [campaign], now=now, by_version=True)
        changed = [g for g in lift.groups if g.policy_version is not None and g.policy_version.isdigit()
                   and self._recorded.get((campaign, g.policy_version)) != g.report]
        if not changed:
            return {}
        figure = plot_lift_by_version(lift.groups, self.out_dir / f"lift_by_version_{campaign}.png",
                                      campaign=campaign)
        figures = {"lift_by_version": figure} if figure is not None else {}
        updated = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        runs = {}
        for group in changed:
            version = str(group.policy_version)
            try:
                runs[version] = registry.record_live_results(
                    campaign, version, lift_metrics(group.report),
                    lift_description(version, group.report, updated), figures)
            except NotFound:
                log.info("campaign %s: version %s is not in this registry; its lift is not recorded", campaign,
                         version)
            self._recorded[(campaign, version)] = group.report
        return runs
