"""The server's link to the MLflow registry, entirely off the request path.

- **Champion**: each campaign serves one live model. At start it is the champion (resolved and loaded
  before the server says it listens, within ``[mlflow] start_timeout_seconds``) or, while MLflow is
  unreachable, the last good champion cached under the data dir (:mod:`service.model_cache`); never the
  bootstrap policy while a trained champion exists and is reachable in either place. When ``champion``
  moves to another version (``offerbandit promote``/``rollback``), that version is loaded in the watcher
  thread, caught up on the events learned after the ``learn_seq`` it includes (streamed in learn_seq
  order) and swapped in atomically; requests keep being served by the old model meanwhile.
- **Checkpoints**: every N learned events or T seconds the live model is published as a new version
  (parent = the version it descends from, with the highest learn_seq it includes, both taken under the
  lock learning holds) and ``champion`` moves to it by compare-and-set, only while it still points at
  the parent (under the decision log's write lock): an operator's move between polls is never undone;
  the checkpoint is then published without the alias and the live model follows the new champion.
  A checkpoint descending from ``bootstrap`` is published only while no champion exists.
- **Roles**: a replica (``publish=False``) only follows the aliases; only the process that learns publishes,
  and only while ``may_publish()`` holds (``offerbandit learn``: while it holds the log's learner lock).
- **Challenger**: loaded the same way and used only for shadow scoring (see ``shadow``).
- **Faults**: the watcher keeps the last good model, records the problem, retries with backoff;
  a separate health entry ``offerbandit.registry`` turns NOT_SERVING while the registry is unusable.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from grpc_health.v1 import health, health_pb2

from offerbandit.errors import OfferBanditError
from policies.contract import Policy, learn_in_batches
from policies.factory import load_policy, policy_names
from policies.types import LearningEvent
from service.campaigns import BOOTSTRAP_VERSION, CampaignRuntime, LivePolicy
from policy_registry import (CHALLENGER, CHAMPION, Lineage, LoadedPolicy, PolicyArtifact, PolicyRegistry,
                                    RegistryConfig, current_code_version)
from policy_registry.watcher import RegistryWatcher
from service.config_toml import campaign_policy_toml
from service.guardrail import GuardrailConfig
from service.guardrail_watch import GuardrailWatch
from service.learner import LearnedCounter, LearningState
from service.metrics import Metrics
from service.model_cache import CachedModel, ModelCache
from service.model_guard import probe_usable

if TYPE_CHECKING:
    from service.lift_runs import LiftRecorder

log = logging.getLogger("offerbandit.registry")
REGISTRY_HEALTH = "offerbandit.registry"
_CATCH_UP_BATCH = 256


class RegistryLink:
    """Follows the registry's aliases into the campaigns of ``state`` and publishes checkpoints of them.

    ``learned`` is what the online learner counted since each campaign's last checkpoint (and the lock
    it learns under); ``metrics`` shows the serving version and ``health_servicer`` whether the registry
    is usable; the last good champion of each campaign is cached under ``data_dir``.
    """

    def __init__(self, state: LearningState, learned: LearnedCounter, *, metrics: Metrics,
                 health_servicer: health.HealthServicer, registry_config: RegistryConfig, poll_seconds: float,
                 full_poll_seconds: float, checkpoint_every_seconds: float, data_dir: Path, publish: bool = True,
                 may_publish: Callable[[], bool] | None = None, guardrail: GuardrailConfig | None = None,
                 lift: LiftRecorder | None = None) -> None:
        self.state = state
        self.publishes = publish
        self._may_publish = may_publish or (lambda: True)
        self.registry_config = registry_config
        self._learned = learned
        self._metrics = metrics
        self._health = health_servicer
        self._checkpoint_every_seconds = checkpoint_every_seconds
        self._lift = lift  # each version's lift on its run, after checkpoint ticks (service.lift_runs)
        self._cache = ModelCache(data_dir)
        self._registry: PolicyRegistry | None = None
        self._registry_lock = threading.Lock()
        self._last_checkpoint: dict[str, float] = {name: time.time() for name in self.state.campaigns}
        self._stop = threading.Event()
        self.store_was_missing = False  # at start: a local store that did not exist holds no champion
        self._moves = threading.Lock()  # one change of a live model's version at a time: swap in or checkpoint
        self.watcher = RegistryWatcher(self.registry, list(self.state.campaigns), self._on_change,
                                       poll_s=poll_seconds, changes=self.state.log.alias_move_mark,
                                       full_poll_s=full_poll_seconds)
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="registry-checkpoints", daemon=True)
        #: the rollback guardrail (`service.guardrail_watch`): only in the process that publishes
        self.guardrail = (GuardrailWatch(state, self.registry, guardrail, may_act=self._may_publish,
                                         on_rollback=lambda campaign: self.watcher.request_poll())
                          if publish and guardrail is not None and guardrail.enabled else None)

    def registry(self) -> PolicyRegistry:
        with self._registry_lock:
            if self._registry is None:
                self._registry = PolicyRegistry(self.registry_config, accepted_policy_names=policy_names(),
                                                alias_ledger=self.state.log)
            return self._registry

    def start(self) -> None:
        """Serve the cached champions, then follow the registry and publish checkpoints (in the background)."""
        self._health.set(REGISTRY_HEALTH, health_pb2.HealthCheckResponse.SERVING)
        self.store_was_missing = self.registry().store_missing()  # looked at before the watcher creates it
        for campaign in self.state.campaigns:
            self._serve_cached(campaign)
        self.watcher.start()
        if self.publishes:
            self._checkpointer.start()
        if self.guardrail is not None:
            self.guardrail.start()

    def wait_for_first_poll(self, timeout: float) -> bool:
        """True once the watcher looked the aliases up (successfully or not) within ``timeout``."""
        return self.watcher.wait_for_first_poll(timeout)

    def serving(self) -> dict[str, str]:
        """The version each campaign serves now."""
        return {name: runtime.live.version for name, runtime in self.state.campaigns.items()}

    def stop(self) -> None:
        self._stop.set()
        self._learned.wake()
        if self.guardrail is not None:
            self.guardrail.stop()
        self.watcher.stop()
        if self._checkpointer.is_alive():
            self._checkpointer.join(10)

    # --- versions coming in -------------------------------------------------------------------

    def _serve_cached(self, campaign: str) -> None:
        """Serve the campaign's cached champion (caught up), if one is cached: no MLflow needed."""
        cached = self._cache.read(campaign, self.registry_config.model_name(campaign))
        if cached is None:
            return
        try:
            policy = load_policy(cached.policy_name, cached.model,
                                 double_buffer=self.state.campaigns[campaign].double_buffer)
        except OfferBanditError as exc:
            log.warning("campaign %s: cached version %s cannot be loaded (%s)", campaign, cached.version, exc)
            return
        with self._moves:
            caught_up = self._swap_in(self.state.campaigns[campaign], policy, cached.version, cached.learn_seq)
        log.warning("campaign %s: serving cached version %s (caught up on %d events)", campaign, cached.version,
                    caught_up)

    def _on_change(self, loaded: LoadedPolicy) -> None:
        runtime = self.state.campaigns.get(loaded.campaign)
        if runtime is None:
            return
        if loaded.alias == CHALLENGER:
            policy = load_policy(loaded.policy_name, loaded.model)  # ModelError: the watcher keeps the old one
            runtime.challenger = LivePolicy(policy, loaded.version)
            log.info("campaign %s: challenger is version %s", loaded.campaign, loaded.version)
            return
        with self._moves:
            if runtime.live.version == loaded.version:
                return  # already serving it (our own checkpoint, or its cached copy), with what it learned since
            policy = load_policy(loaded.policy_name, loaded.model,  # ModelError: the watcher keeps the old one
                                 double_buffer=runtime.double_buffer)
            base = self._included_learn_seq(loaded)
            caught_up = self._swap_in(runtime, policy, loaded.version, base)
            self._cache_champion(CachedModel(loaded.campaign, loaded.version, base, loaded.policy_name,
                                             self.registry_config.model_name(loaded.campaign), loaded.model))
        log.warning("campaign %s: now serving version %s (caught up on %d events)", loaded.campaign,
                    loaded.version, caught_up)

    def _included_learn_seq(self, loaded: LoadedPolicy) -> int:
        """The learn_seq a loaded version includes: its own; for a checkpoint from before learn_seq, where
        its log window ended; for a version trained elsewhere, everything learned so far (no catch-up)."""
        lineage = loaded.lineage
        if lineage.learn_seq is not None:
            return lineage.learn_seq
        if lineage.log_window_end is not None:
            return self.state.log.learn_seq_through(loaded.campaign, lineage.log_window_end)
        return self.state.log.max_learn_seq(loaded.campaign)

    def _swap_in(self, runtime: CampaignRuntime, policy: Policy, version: str, learn_seq: int) -> int:
        """Catch ``policy`` up on the events learned after ``learn_seq`` and serve it; how many it caught up.

        Most of the catch-up runs while the learner keeps learning into the old model; the rest, and the
        swap, under the learning lock, so no event is learned by one model and missed by the other.
        """
        campaign = runtime.config.name
        first, last = self._catch_up(campaign, policy, learn_seq)
        with self._learned.learning:
            rest, last = self._catch_up(campaign, policy, last)
            runtime.live.swap(policy, version)
            self._learned.restart(campaign, last)
            if first + rest:
                self._learned.add(campaign, first + rest)  # in the model, not yet in a checkpoint of it
        self._metrics.set_policy_version(campaign, version)
        return first + rest

    def _catch_up(self, campaign: str, policy: Policy, after: int) -> tuple[int, int]:
        """Learn the campaign's events with a learn_seq above ``after``, in that order, streamed; returns
        (how many, the highest learn_seq learned or ``after``)."""
        last = [after]

        def events() -> Iterator[LearningEvent]:
            for item in self.state.log.learned_events_after(self.state.reward_defaults, campaign, after):
                last[0] = item.learn_seq
                yield item.event

        count = learn_in_batches(policy, events(), _CATCH_UP_BATCH)
        return count, last[0]

    def _cache_champion(self, cached: CachedModel) -> None:
        try:
            self._cache.write(cached)
        except OSError as exc:  # serving goes on; only a start without MLflow would miss it
            log.warning("campaign %s: version %s cannot be cached: %s", cached.campaign, cached.version, exc)

    def _follow_champion(self, campaign: str) -> None:
        """The live model no longer descends from the champion: have the watcher swap the champion in."""
        self.watcher.forget(campaign, CHAMPION)
        self.watcher.request_poll()

    # --- checkpoints going out ----------------------------------------------------------------

    def _checkpoint_loop(self) -> None:
        every = self._checkpoint_every_seconds
        while not self._stop.is_set():
            self._learned.wait_due(timeout=min(every, 5.0))
            status = self.watcher.status()
            # before the watcher's first poll there is nothing to report (it may be creating the store):
            # NOT_SERVING then would stand until the next tick, seconds after a healthy first poll
            if not self._stop.is_set() and status.last_poll_time is not None:
                self._set_health(status.healthy)
            for campaign in list(self.state.campaigns):
                try:
                    with self._moves:  # decided under the lock: an explicit checkpoint may just have run
                        if self._checkpoint_due(campaign, every):
                            self._checkpoint(campaign)
                except Exception:  # noqa: BLE001 - retried at the next tick; serving is unaffected
                    log.exception("checkpoint of campaign %s failed", campaign)
                    self._set_health(False)
                self._record_lift(campaign)

    def record_lift(self, campaign: str) -> dict[str, str]:
        """Record the campaign's lift per version on the versions' runs now (version -> run id of those whose
        numbers changed); only the publishing process records."""
        if self._lift is None or not self.publishes or not self._may_publish():
            return {}
        return self._lift.record(self.state.log, self.registry(), campaign)

    def _record_lift(self, campaign: str) -> None:
        """`record_lift` on the checkpoint thread when due; a failure is logged and retried at a later tick,
        checkpoints and serving go on."""
        if self._lift is None or not self._lift.due(campaign, time.time()):
            return
        try:
            self.record_lift(campaign)
        except Exception:  # noqa: BLE001 - a report, never a reason to stop checkpointing
            log.exception("recording the lift of campaign %s failed", campaign)

    def _checkpoint_due(self, campaign: str, every_seconds: float) -> bool:
        pending = self._learned.since_checkpoint(campaign)
        if pending >= self._learned.every_events:
            return True
        return pending > 0 and time.time() - self._last_checkpoint[campaign] >= every_seconds

    def checkpoint(self, campaign: str) -> str | None:
        """Publish the live model of ``campaign`` as a new version and point ``champion`` at it if it still
        points at the version the live model descends from; the new version, or None when the live model
        is the untrained bootstrap policy and a champion exists (nothing is published then)."""
        with self._moves:
            return self._checkpoint(campaign)

    def _checkpoint(self, campaign: str) -> str | None:
        if not self.publishes or not self._may_publish():
            log.warning("campaign %s: not publishing: this process does not hold the role of the learner", campaign)
            return None
        runtime = self.state.campaigns[campaign]
        with self._learned.learning:  # the bytes and the learn_seq they include, taken together
            policy, parent = runtime.live.current()
            probe_usable(policy, runtime)  # ModelError: a model with non-finite pmfs is never published
            model = policy.save()
            learn_seq = self._learned.learn_seq(campaign)
            learned = self._learned.since_checkpoint(campaign)
            window_start = self._learned.window_start(campaign)
        registry = self.registry()
        from_bootstrap = parent == BOOTSTRAP_VERSION
        if from_bootstrap and registry.resolve(campaign, CHAMPION) is not None:
            log.warning("campaign %s: not publishing the bootstrap policy's checkpoint over the champion; "
                        "following the champion", campaign)
            self._follow_champion(campaign)
            return None
        lineage = Lineage(parent_version=None if from_bootstrap else parent, log_window_start=window_start,
                          log_window_end=time.time(), event_count=learned, code_version=current_code_version(),
                          learn_seq=learn_seq)
        artifact = PolicyArtifact(campaign=campaign, policy_name=policy.name, model=model,
                                  config_toml=campaign_policy_toml(runtime.config, policy.params),
                                  lineage=lineage, metrics=self._live_metrics(campaign, parent))
        version = registry.publish(artifact, aliases=())
        self._learned.checkpointed(campaign, learned)
        self._last_checkpoint[campaign] = time.time()
        self._set_health(True)
        if not self._may_publish():  # the learner lock dropped while the version was uploaded
            log.warning("campaign %s: version %s published, but the learner lock was lost: champion not moved",
                        campaign, version)
            return version
        if not registry.move_champion(campaign, version, expected=None if from_bootstrap else parent):
            log.warning("campaign %s: champion moved away from %s; checkpoint published as version %s without "
                        "the alias, following the champion", campaign, parent, version)
            self._follow_champion(campaign)
            return version
        if runtime.live.current()[0] is policy:  # nothing swapped meanwhile
            runtime.live.swap(policy, version)
            self._metrics.set_policy_version(campaign, version)
        self._cache_champion(CachedModel(campaign, version, learn_seq, policy.name,
                                         self.registry_config.model_name(campaign), model))
        log.info("campaign %s: checkpoint published as version %s (parent %s, %d events, learn_seq %d)", campaign,
                 version, parent, learned, learn_seq)
        return version

    def _live_metrics(self, campaign: str, version: str) -> dict[str, float]:
        """Live reward of the decisions this version made (learned events only)."""
        stats = self.state.log.live_stats(campaign, version)
        n = stats.events
        metrics = {"live_events": float(n)}
        if n:
            metrics["live_reward_mean"] = stats.reward_mean
            metrics["share_outside_history"] = stats.outside_history / n
        return metrics

    def _set_health(self, ok: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        self._health.set(REGISTRY_HEALTH, status)
