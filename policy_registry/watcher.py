"""Follow the registry's serving aliases in the background and hand changed versions to the server.

A daemon thread resolves ``champion`` (and ``challenger``) for every campaign, loads a version that
changed, verifies it and calls ``on_change`` with it. Nothing here runs on the request path, and the
first MLflow import happens in this thread (the registry is built there by ``registry_factory``).

With ``changes`` (a cheap mark of the alias moves recorded in the decision log, which every offerbandit
writer of aliases records under the log's lock), a poll asks MLflow only when the mark moved, after a
``forget``/``request_poll``, after a failed poll, or every ``full_poll_s`` (moves made outside offerbandit,
e.g. in the MLflow UI): MLflow's client holds the GIL for tens of milliseconds per lookup, which is what a
decision waiting behind it sees as tail latency.

When something fails — the store cannot be reached, an artefact is corrupt, ``on_change`` refuses
the version (e.g. an incompatible model) — the last good version stays in service, the problem is
recorded in ``status()`` and the poll is retried with exponential backoff. A version only counts as
current once ``on_change`` has accepted it, so a fixed artefact is picked up by a later poll.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policy_registry.records import CHALLENGER, CHAMPION, LoadedPolicy
from policy_registry.registry import PolicyRegistry
from policy_registry.validation import validate_alias, validate_campaign

__all__ = ["RegistryWatcher", "WatchProblem", "WatchedVersion", "WatcherStatus"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchedVersion:
    """The version in service for one (campaign, alias)."""

    campaign: str
    alias: str
    version: str


@dataclass(frozen=True, slots=True)
class WatchProblem:
    """Why the last poll could not bring one (campaign, alias) up to date.

    ``campaign`` and ``alias`` are None when the registry itself could not be opened.
    """

    campaign: str | None
    alias: str | None
    version: str | None
    error: str


@dataclass(frozen=True, slots=True)
class WatcherStatus:
    """A snapshot for health checks and logs."""

    running: bool
    last_poll_time: float | None
    last_ok_time: float | None  # last poll in which every campaign and alias was up to date
    last_error: str | None  # None when the last poll succeeded
    last_error_time: float | None
    consecutive_failures: int
    next_poll_in_s: float
    current: tuple[WatchedVersion, ...]
    problems: tuple[WatchProblem, ...]

    @property
    def healthy(self) -> bool:
        return self.last_poll_time is not None and self.last_error is None

    def version_of(self, campaign: str, alias: str = CHAMPION) -> str | None:
        for watched in self.current:
            if watched.campaign == campaign and watched.alias == alias:
                return watched.version
        return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _check_positive(value: object, name: str) -> float:
    return float(check_scalar(value, name, float, low=0, low_open=True))


class RegistryWatcher:
    """Polls the registry every ``poll_s`` seconds; after a failed poll waits ``backoff_initial_s``,
    doubling up to ``backoff_max_s``, until a poll succeeds again."""

    def __init__(
        self,
        registry_factory: Callable[[], PolicyRegistry],
        campaigns: Sequence[str],
        on_change: Callable[[LoadedPolicy], None],
        *,
        aliases: Sequence[str] = (CHAMPION, CHALLENGER),
        poll_s: float = 15.0,
        changes: Callable[[], object] | None = None,
        full_poll_s: float = 60.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(registry_factory):
            raise InvalidInput("registry_factory must be callable", field="registry_factory")
        if not callable(on_change):
            raise InvalidInput("on_change must be callable", field="on_change")
        if isinstance(campaigns, str) or not campaigns:
            raise InvalidInput("campaigns must be a non-empty sequence of names", field="campaigns")
        for campaign in campaigns:
            validate_campaign(campaign)
        if isinstance(aliases, str) or not aliases:
            raise InvalidInput("aliases must be a non-empty sequence of alias names", field="aliases")
        for alias in aliases:
            validate_alias(alias)
        self._poll_s = _check_positive(poll_s, "poll_s")
        self._full_poll_s = _check_positive(full_poll_s, "full_poll_s")
        if changes is not None and not callable(changes):
            raise InvalidInput("changes must be callable", field="changes")
        self._changes = changes
        self._backoff_initial_s = _check_positive(backoff_initial_s, "backoff_initial_s")
        self._backoff_max_s = _check_positive(backoff_max_s, "backoff_max_s")
        if self._backoff_max_s < self._backoff_initial_s:
            raise InvalidInput("backoff_max_s must be >= backoff_initial_s", field="backoff_max_s")

        self._registry_factory = registry_factory
        self._campaigns = tuple(dict.fromkeys(campaigns))
        self._aliases = tuple(dict.fromkeys(aliases))
        self._on_change = on_change
        self._clock = clock

        self._registry: PolicyRegistry | None = None
        self._current: dict[tuple[str, str], str] = {}
        self._problems: tuple[WatchProblem, ...] = ()
        self._last_poll_time: float | None = None
        self._last_ok_time: float | None = None
        self._last_error: str | None = None
        self._last_error_time: float | None = None
        self._failures = 0
        self._next_delay_s = 0.0
        self._seen_mark: object = None
        self._last_full_poll: float | None = None  # clock time of the last poll that asked MLflow
        self._must_ask = True  # set by forget / request_poll and after a failed poll

        self._state_lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._first_poll = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the daemon thread (its first poll runs at once). Starting twice is refused."""
        if self._thread is not None:
            raise RuntimeError("RegistryWatcher already started")
        self._thread = threading.Thread(target=self._run, name="registry-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop and wait for it (a poll stuck in MLflow is left to die as a daemon)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait_for_first_poll(self, timeout_s: float | None = None) -> bool:
        """True once a first poll finished (successfully or not) within ``timeout_s``."""
        return self._first_poll.wait(timeout_s)

    def request_poll(self) -> None:
        """Poll now instead of after the current delay (or backoff), asking MLflow whatever the log says."""
        self._must_ask = True
        self._wake.set()

    def forget(self, campaign: str, alias: str = CHAMPION) -> None:
        """Treat (campaign, alias) as not loaded: the next poll hands its version to ``on_change`` again,
        even if it is the one loaded last (the server's live model may have moved away from it)."""
        with self._state_lock:
            self._current.pop((campaign, alias), None)
            self._must_ask = True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            with self._state_lock:
                delay = self._next_delay_s
            self._wake.wait(delay)
            self._wake.clear()

    # ----------------------------------------------------------------- one poll

    def poll_once(self) -> bool:
        """Bring every (campaign, alias) up to date once; True when nothing failed. Never raises."""
        with self._poll_lock:
            mark = self._mark()
            if self._nothing_moved(mark):
                self._record([])
                return True
            self._must_ask = False
            self._last_full_poll = self._clock()
            problems = self._poll_targets()
            if problems:
                self._must_ask = True
            else:
                self._seen_mark = mark
            self._record(problems)
            self._first_poll.set()
            return not problems

    def _mark(self) -> object:
        if self._changes is None:
            return None
        try:
            return self._changes()
        except Exception as exc:  # noqa: BLE001 - the log unreadable: ask MLflow, as without a mark
            _log.debug("registry watcher: alias-move mark unavailable (%s)", _describe(exc))
            return None

    def _nothing_moved(self, mark: object) -> bool:
        """True when MLflow need not be asked: the log's mark is the one seen at the last good poll, nothing
        forced a lookup, and the last lookup is younger than ``full_poll_s``."""
        if mark is None or self._must_ask or mark != self._seen_mark or self._last_full_poll is None:
            return False
        return self._clock() - self._last_full_poll < self._full_poll_s

    def _poll_targets(self) -> list[WatchProblem]:
        if self._registry is None:
            try:
                self._registry = self._registry_factory()
            except Exception as exc:  # noqa: BLE001 - any failure is reported, never raised
                return [WatchProblem(None, None, None, _describe(exc))]
        problems: list[WatchProblem] = []
        for campaign in self._campaigns:
            for alias in self._aliases:
                problem = self._refresh(self._registry, campaign, alias)
                if problem is not None:
                    problems.append(problem)
        return problems

    def _refresh(self, registry: PolicyRegistry, campaign: str, alias: str) -> WatchProblem | None:
        version: str | None = None
        try:
            version = registry.resolve(campaign, alias)
            if version is None or version == self._current.get((campaign, alias)):
                return None  # an alias that disappears leaves the last loaded version in service
            loaded = registry.load(campaign, version)
            self._on_change(replace(loaded, alias=alias))
        except Exception as exc:  # noqa: BLE001 - keep the last good version, report, retry later
            return WatchProblem(campaign, alias, version, _describe(exc))
        with self._state_lock:
            previous = self._current.get((campaign, alias))
            self._current[(campaign, alias)] = version
        _log.info("campaign %s: %s now v%s (was %s)", campaign, alias, version, previous or "none")
        return None

    def _record(self, problems: list[WatchProblem]) -> None:
        now = self._clock()
        with self._state_lock:
            self._last_poll_time = now
            self._problems = tuple(problems)
            if problems:
                self._failures += 1
                message = "; ".join(
                    f"{p.campaign or '*'}@{p.alias or '*'}: {p.error}" for p in problems
                )
                if message != self._last_error:
                    _log.warning("registry watcher: %s", message)
                self._last_error, self._last_error_time = message, now
                exponent = min(self._failures - 1, 60)
                self._next_delay_s = min(self._backoff_max_s, self._backoff_initial_s * 2**exponent)
            else:
                if self._last_error is not None:
                    _log.info("registry watcher recovered after %d failed polls", self._failures)
                self._failures = 0
                self._last_error = None
                self._last_ok_time = now
                self._next_delay_s = self._poll_s

    # ----------------------------------------------------------------- status

    def status(self) -> WatcherStatus:
        with self._state_lock:
            current = tuple(
                WatchedVersion(campaign, alias, version)
                for (campaign, alias), version in sorted(self._current.items())
            )
            return WatcherStatus(
                running=self._thread is not None and self._thread.is_alive() and not self._stop.is_set(),
                last_poll_time=self._last_poll_time,
                last_ok_time=self._last_ok_time,
                last_error=self._last_error,
                last_error_time=self._last_error_time,
                consecutive_failures=self._failures,
                next_poll_in_s=self._next_delay_s,
                current=current,
                problems=self._problems,
            )
