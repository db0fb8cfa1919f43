"""Retention (``[log] retention_days``): a background job of the process that writes the log deletes
decisions older than the window, with their rewards and shadow scores.

Every ``retention_interval_seconds`` the job takes the cutoff ``now - retention_days``; with
``retention_export_dir`` set it first writes the rows before the cutoff as Parquet under
``<dir>/before-<cutoff>/`` (an export that fails stops the pass: nothing is deleted unexported); then it deletes
them in transactions of at most ``retention_batch`` decisions, each its own short ``BEGIN IMMEDIATE`` beside
the log's writer (decisions keep committing between batches); then a SQLite log created with
``auto_vacuum=INCREMENTAL`` gives the freed pages back (the file shrinks). PostgreSQL's space is reused
after (auto)VACUUM, the operator's. Learning skips the gaps (``learn_seq`` order has holes, never repeats).

It runs in ``serve`` on the embedded SQLite log and in ``offerbandit learn`` on a shared log (one process,
not every replica).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from decision_log import DecisionLog, LogFilter, RewardDefaults
from decision_log.privacy_records import RetentionPass
from offerbandit.errors import OfferBanditError
from service.config import ServiceConfig

__all__ = ["RetentionJob", "RetentionSettings"]

_log = logging.getLogger("offerbandit.retention")
DAY = 86400.0


@dataclass(frozen=True)
class RetentionSettings:
    days: float
    export_dir: Path | None = None
    interval_s: float = 3600.0
    batch: int = 1000
    pause_s: float = 0.01  # between batches: the writer's groups commit meanwhile

    @classmethod
    def of(cls, config: ServiceConfig) -> "RetentionSettings":
        log = config.log
        return cls(float(log.retention_days), Path(log.retention_export_dir) if log.retention_export_dir else None,
                   float(log.retention_interval_seconds), int(log.retention_batch))

    @property
    def enabled(self) -> bool:
        return self.days > 0


class RetentionJob:
    """Deletes what is older than the retention window, every ``interval_s`` (a daemon thread)."""

    def __init__(self, log: DecisionLog, settings: RetentionSettings, defaults: RewardDefaults | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.log = log
        self.settings = settings
        self._defaults = defaults
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: RetentionPass | None = None

    def start(self) -> None:
        if not self.settings.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="log-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except OfferBanditError as exc:  # the log is busy or unreachable for now: the next pass retries
                _log.warning("retention: %s", exc)
            except OSError as exc:  # the export could not be written: nothing was deleted
                _log.error("retention: export to %s failed, nothing deleted: %s", self.settings.export_dir, exc)
            self._stop.wait(self.settings.interval_s)

    def run_once(self, now: float | None = None) -> RetentionPass:
        """One pass: export (if configured) and delete everything decided before ``now - days``."""
        cutoff = (self._clock() if now is None else now) - self.settings.days * DAY
        if self.settings.export_dir is not None and self._has_rows_before(cutoff):
            from decision_log.parquet_export import export_parquet

            out = self.settings.export_dir / f"before-{int(cutoff)}"
            export_parquet(self.log.location, out, defaults=self._defaults, until=cutoff)
        done = self.log.delete_older_than(cutoff, batch=self.settings.batch, pause_s=self.settings.pause_s)
        if done.decisions:
            self.log.reclaim_space()
            _log.info("retention: deleted %d decisions (%d rewards, %d shadow scores) decided before %.0f",
                      done.decisions, done.rewards, done.shadow_scores, cutoff)
        self.last = done
        return done

    def _has_rows_before(self, cutoff: float) -> bool:
        return next(iter(self.log.decisions(LogFilter(until=cutoff), chunk=1)), None) is not None
