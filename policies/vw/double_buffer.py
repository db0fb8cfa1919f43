"""Double-buffered VW: decisions score on a *serving* workspace, learning goes into a *learning* one.

With one workspace, a checkpoint's ``save`` holds the workspace lock while VW serialises it (it walks the
whole ``-b`` weight table: ~80 ms at ``-b 24`` on an idle core), and every decision waits that long. Here
the learner owns the learning workspace (its own lock); decisions use the serving workspace (another
lock). A *publish* makes the serving workspace what the learning one is by *replaying* on it the events
learned since the last publish, a few at a time (each slice holds the serving lock ~1 ms; decisions run
between slices). VW learns deterministically: the same events in the same order give the same weights on
a dense workspace as on the sparse learning one, so after a replay both score bit for bit alike -- which
the publish checks on the last learned decision; where they differ (or the replay fails, or more than
``replay_limit`` events waited), it *reloads* instead: a fresh serving workspace loaded from the saved
bytes, warmed with the arm examples the old one knew, swapped in (one assignment, atomic under the GIL);
the old one is closed after the calls in flight on it finish, and a call that reaches it after that
retries on the new one. ``load`` always reloads. No decision ever waits for a serialisation or a load.

Why replay: a reload is one VW call that holds the GIL for VW's whole set-up and load (~5-10 ms on an
idle core, whatever ``-b``), plus re-parsing the known arms; with a publish every second that was the
most frequent stall of a learning server's decisions. A replay costs the learner about what learning
cost it (dense learning is a little faster than sparse), in slices the other threads interleave with.

What decisions see lags learning until the next publish: every ``publish_every_events`` learned events
or ``publish_every_seconds`` after the last publish (checked when ``learn`` returns), and at every
``save``: the bytes ``save`` returns are published, so ``load(save())`` scores exactly like the policy
that saved them. ``learned_pmf_batch`` scores on the learning workspace (what a guard must probe after
an update).

VW's save and load hold the GIL (every thread of the process waits), for a time that grows with the weight
table: a dense ``-b 24`` save walks 2^24 slots (~200 ms). The learning workspace therefore keeps sparse
weights (``sparse_learning``): a save takes under a millisecond. Memory: the serving weight table plus the
weights learning used, plus the events learned since the last publish (at most ``replay_limit``).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput, ModelError
from policies.types import ArmSet, DecisionContext, LearningEvent
from policies.vw.learner import CbAdfLearner, CbAdfOptions, RetiredLearner

__all__ = ["DoubleBuffer", "DoubleBufferedLearner"]

T = TypeVar("T")

#: events replayed on the serving workspace under one hold of its lock (~1 ms at 128 arms)
REPLAY_SLICE = 16


@dataclass(frozen=True, slots=True)
class DoubleBuffer:
    """When a double-buffered policy publishes what it learned to the serving workspace (whichever comes
    first, checked after each ``learn``; ``save`` always publishes)."""

    publish_every_events: int = 1024
    publish_every_seconds: float = 1.0
    #: serialise in a forked child (`CbAdfLearner.save_in_child`): VW's save holds the GIL, so in this
    #: process it stops every thread, decisions included, for its whole duration. Off by default: the
    #: design notes forbid forking once gRPC or psycopg threads run (a forked child may inherit their
    #: locks held); turn it on only in a process that has neither.
    serialise_in_child: bool = False
    #: publish from ``learn`` when due; False: only ``publish``/``save`` do (an owner that checks each update
    #: before decisions may see it, like the service's model guard, publishes itself)
    publish_on_learn: bool = True
    #: the learning workspace keeps sparse weights (`CbAdfLearner.sparse`): its saves -- at every publish,
    #: snapshot and checkpoint -- take well under a millisecond of the GIL instead of ~200 ms at -b 24;
    #: learning costs ~2x per event; decisions still score on a dense serving workspace
    sparse_learning: bool = True
    #: at most this many learned events wait to be replayed on the serving workspace; past it the next
    #: publish reloads from the saved bytes instead (an owner that seldom publishes keeps little in memory)
    replay_limit: int = 20_000

    def __post_init__(self) -> None:
        for name in ("serialise_in_child", "publish_on_learn", "sparse_learning"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(f"{name} must be true or false", field=name)
        check_scalar(self.publish_every_events, "publish_every_events", int, low=1)
        check_scalar(self.publish_every_seconds, "publish_every_seconds", low=0.0)
        check_scalar(self.replay_limit, "replay_limit", int, low=0)


class DoubleBufferedLearner:
    """A learning :class:`CbAdfLearner` (learn, save) and a serving one (pmf), swapped by :meth:`publish`.

    Thread-safe: any number of scoring threads, and learn/save/publish from any thread (publishes are
    serialised among themselves; a learn waits only for a serialisation of the learning workspace)."""

    def __init__(self, options: CbAdfOptions, settings: DoubleBuffer = DoubleBuffer(), *,
                 model: bytes | None = None) -> None:
        self.options = options
        self.settings = settings
        self.learning = CbAdfLearner(options, model=model, sparse=settings.sparse_learning)
        # a fresh workspace with the same options scores like the fresh learning one; loaded bytes alike
        self._serving = CbAdfLearner(options, model=model)
        self._publish_lock = threading.Lock()
        #: held across a learn and the record of what it learned, so the replay order is the learning order
        self._learn_lock = threading.Lock()
        self._unpublished: list[LearningEvent] | None = []  # None: too many; the next publish reloads
        self._published_at = time.monotonic()
        self._probe: tuple[DecisionContext, ArmSet] | None = None  # the last learned decision
        self.publishes = 0
        self.reloads = 0  # publishes that loaded a fresh serving workspace instead of replaying
        self.publish_seconds = 0.0  # time spent publishing (serialise + replay or load), for reports

    @property
    def serving(self) -> CbAdfLearner:
        return self._serving

    def _serve(self, call: Callable[[CbAdfLearner], T]) -> T:
        while True:
            serving = self._serving
            try:
                return call(serving)
            except RetiredLearner:
                if self._serving is serving:  # closed, not replaced: the policy itself was closed
                    raise

    def predict_pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        return self._serve(lambda serving: serving.predict_pmf(context, arm_set))

    def predict_pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        return self._serve(lambda serving: serving.predict_pmf_batch(items))

    def learned_pmf_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        """pmfs of the learning workspace (everything learned so far, published or not)."""
        return self.learning.predict_pmf_batch(items)

    def predict_costs_batch(self, items: Sequence[tuple[DecisionContext, ArmSet]]) -> list[np.ndarray]:
        return self._serve(lambda serving: serving.predict_costs_batch(items))

    def learn(self, events: Iterable[LearningEvent]) -> None:
        events = list(events)
        with self._learn_lock:
            self.learning.learn(events)
            if events:
                self._probe = (events[-1].context, events[-1].arm_set)
            if self._unpublished is not None:
                self._unpublished.extend(events)
                if len(self._unpublished) > self.settings.replay_limit:
                    self._unpublished = None
            pending = len(self._unpublished) if self._unpublished is not None else self.settings.replay_limit + 1
        due = self.settings.publish_on_learn and pending > 0 and (
            pending >= self.settings.publish_every_events
            or time.monotonic() - self._published_at >= self.settings.publish_every_seconds)
        if due:
            self.publish()

    def publish(self) -> bytes:
        """Make the serving workspace score like the learning one (see the module's docstring) and return
        the learning workspace's bytes.

        A model whose pmf on the last learned decision is not a distribution is not served (ModelError:
        the serving workspace stays as it was, and the events wait), so an update that broke VW never
        reaches decisions."""
        with self._publish_lock:
            started = time.perf_counter()
            with self._learn_lock:  # the bytes, the probe and the events to replay describe one state
                data = self.learning.save_in_child() if self.settings.serialise_in_child else self.learning.save()
                expected = self._probe_pmf(self.learning)
                events, self._unpublished = self._unpublished, []
            if events is None or not self._replayed(events, expected):
                try:
                    self._reload(data)
                except BaseException:
                    with self._learn_lock:  # the events still wait (the next publish reloads)
                        self._unpublished = None
                    raise
            self._published_at = time.monotonic()
            self.publishes += 1
            self.publish_seconds += time.perf_counter() - started
            return data

    def _probe_pmf(self, learner: CbAdfLearner) -> np.ndarray | None:
        """The pmf of the last learned decision (ModelError when it is not a distribution); None when
        nothing was learned or its arms no longer validate."""
        if self._probe is None:
            return None
        try:
            pmf = learner.predict_pmf(*self._probe)
        except InvalidInput:
            return None
        total = float(pmf.sum())
        if not np.isfinite(total) or total <= 0.0 or (pmf < 0.0).any():
            raise ModelError(f"the learned model gives an invalid pmf (sum {total}); not published")
        return pmf

    def _replayed(self, events: list[LearningEvent], expected: np.ndarray | None) -> bool:
        """Learn ``events`` on the serving workspace, a slice at a time; True when it now scores the probe
        exactly as the learning workspace did (False: it must be reloaded)."""
        serving = self._serving
        try:
            for start in range(0, len(events), REPLAY_SLICE):
                serving.learn(events[start:start + REPLAY_SLICE])
                time.sleep(0)  # a decision waiting for the serving lock gets it (and the GIL) between slices
            return expected is None or np.array_equal(serving.predict_pmf(*self._probe), expected)
        except (InvalidInput, ModelError):
            return False

    def _reload(self, data: bytes) -> None:  # call with the publish lock held
        fresh = CbAdfLearner.from_bytes(self.options, data)
        try:
            self._probe_pmf(fresh)
        except ModelError:
            fresh.close()
            raise
        self._swap_in(fresh)
        self.reloads += 1

    def _swap_in(self, fresh: CbAdfLearner) -> None:  # call with the publish lock held
        old = self._serving
        fresh.warm(old.known_arm_sets())
        self._serving = fresh
        old.close()  # waits for the call in flight on it; later ones retry on `fresh`

    def save(self) -> bytes:
        return self.publish()

    def load(self, data: bytes) -> None:
        """Learn on and serve the model in ``data`` from now on."""
        with self._publish_lock:
            with self._learn_lock:
                self.learning.load(data)
                self._unpublished = []
            self._swap_in(CbAdfLearner.from_bytes(self.options, data))
            self._published_at = time.monotonic()

    @property
    def cached_arms(self) -> int:
        return self._serving.cached_arms

    def close(self) -> None:
        with self._publish_lock:
            self.learning.close()
            self._serving.close()
