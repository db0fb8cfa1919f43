"""The server's link to the MLflow registry, entirely off the request path.

- **Champion**: each campaign serves one live model. When ``champion`` points to a version this
  server did not publish itself (start-up, ``offerbandit promote``/``rollback``), the version is
  loaded in the watcher thread, caught up on the events learned after its log window, and swapped
  in atomically; requests keep being served by the old model meanwhile.
- **Checkpoints**: every N learned events or T seconds, the live model is published as a new
  version (parent = the version it descends from) and ``champion`` moves to it: same lineage, no
  gate. Decisions then name that version.
- **Challenger**: loaded the same way and used only for shadow scoring (see ``shadow``).
- **Faults**: the watcher keeps the last good model, records the problem, retries with backoff;
  a separate health entry ``offerbandit.registry`` turns NOT_SERVING while the registry is unusable.
"""
from __future__ import annotations

import logging
import threading
import time

from grpc_health.v1 import health, health_pb2

from policies.contract import Policy, learn_in_batches
from policies.factory import load_policy, policy_names
from service.campaigns import BOOTSTRAP_VERSION, CampaignRuntime, LivePolicy
from policy_registry import (CHALLENGER, CHAMPION, Lineage, LoadedPolicy, PolicyArtifact, PolicyRegistry,
                                    RegistryConfig, current_code_version)
from policy_registry.watcher import RegistryWatcher
from service.config_toml import campaign_policy_toml
from service.engine import DecisionEngine
from service.learner import LearnedCounter
from service.metrics import Metrics
from service.model_guard import probe_usable

log = logging.getLogger("offerbandit.registry")
REGISTRY_HEALTH = "offerbandit.registry"


class RegistryLink:
    """Follows the registry's aliases into the engine's campaigns and publishes checkpoints of them.

    ``learned`` is what the online learner counted since each campaign's last checkpoint; ``metrics``
    shows the serving version and ``health_servicer`` whether the registry is usable.
    """

    def __init__(self, engine: DecisionEngine, learned: LearnedCounter, *, metrics: Metrics,
                 health_servicer: health.HealthServicer, registry_config: RegistryConfig, poll_seconds: float,
                 checkpoint_every_seconds: float) -> None:
        self.engine = engine
        self.registry_config = registry_config
        self._learned = learned
        self._metrics = metrics
        self._health = health_servicer
        self._checkpoint_every_seconds = checkpoint_every_seconds
        self._registry: PolicyRegistry | None = None
        self._registry_lock = threading.Lock()
        self._published: set[tuple[str, str]] = set()
        self._last_checkpoint: dict[str, float] = {name: time.time() for name in self.engine.campaigns}
        self._stop = threading.Event()
        self._checkpoint_lock = threading.Lock()
        self.watcher = RegistryWatcher(self.registry, list(self.engine.campaigns), self._on_change,
                                       poll_s=poll_seconds)
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="registry-checkpoints", daemon=True)

    def registry(self) -> PolicyRegistry:
        with self._registry_lock:
            if self._registry is None:
                self._registry = PolicyRegistry(self.registry_config, accepted_policy_names=policy_names())
            return self._registry

    def start(self) -> None:
        self._health.set(REGISTRY_HEALTH, health_pb2.HealthCheckResponse.SERVING)
        self.watcher.start()
        self._checkpointer.start()

    def wait_for_first_poll(self, timeout: float) -> bool:
        """True once the watcher looked the aliases up (successfully or not) within ``timeout``."""
        return self.watcher.wait_for_first_poll(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._learned.wake()
        self.watcher.stop()
        if self._checkpointer.is_alive():
            self._checkpointer.join(10)

    # --- versions coming in -------------------------------------------------------------------

    def _on_change(self, loaded: LoadedPolicy) -> None:
        runtime = self.engine.campaigns.get(loaded.campaign)
        if runtime is None:
            return
        if (loaded.campaign, loaded.version) in self._published:
            return  # our own checkpoint: already serving it
        policy = load_policy(loaded.policy_name, loaded.model)  # ModelError: the watcher keeps the old one
        if loaded.alias == CHALLENGER:
            runtime.challenger = LivePolicy(policy, loaded.version)
            log.info("campaign %s: challenger is version %s", loaded.campaign, loaded.version)
            return
        caught_up = self._catch_up(runtime, policy, loaded.lineage)
        runtime.live.swap(policy, loaded.version)
        self._learned.restart(loaded.campaign)
        self._metrics.set_policy_version(loaded.campaign, loaded.version)
        log.warning("campaign %s: now serving version %s (caught up on %d events)", loaded.campaign,
                    loaded.version, caught_up)

    def _catch_up(self, runtime: CampaignRuntime, policy: Policy, lineage: Lineage) -> int:
        """Learn the events the log learned after the version's window, so a restart loses nothing."""
        if lineage.log_window_end is None:
            return 0
        events = self.engine.log.learning_events(self.engine.reward_defaults, campaign=runtime.config.name,
                                                 learned_after=lineage.log_window_end)
        return learn_in_batches(policy, events, 256)

    # --- checkpoints going out ----------------------------------------------------------------

    def _checkpoint_loop(self) -> None:
        every = self._checkpoint_every_seconds
        while not self._stop.is_set():
            self._learned.wait_due(timeout=min(every, 5.0))
            if not self._stop.is_set():
                self._set_health(self.watcher.status().healthy)
            for campaign in list(self.engine.campaigns):
                try:
                    with self._checkpoint_lock:  # decided under the lock: an explicit checkpoint may just have run
                        if self._checkpoint_due(campaign, every):
                            self._checkpoint(campaign)
                except Exception:  # noqa: BLE001 - retried at the next tick; serving is unaffected
                    log.exception("checkpoint of campaign %s failed", campaign)
                    self._set_health(False)

    def _checkpoint_due(self, campaign: str, every_seconds: float) -> bool:
        pending = self._learned.since_checkpoint(campaign)
        if pending >= self._learned.every_events:
            return True
        return pending > 0 and time.time() - self._last_checkpoint[campaign] >= every_seconds

    def checkpoint(self, campaign: str) -> str:
        """Publish the live model of ``campaign`` as a new version and point ``champion`` at it."""
        with self._checkpoint_lock:
            return self._checkpoint(campaign)

    def _checkpoint(self, campaign: str) -> str:
        runtime = self.engine.campaigns[campaign]
        policy, parent = runtime.live.current()
        probe_usable(policy, runtime)  # ModelError: a model with non-finite pmfs is never published
        learned = self._learned.since_checkpoint(campaign)
        window_end = time.time()
        model = policy.save()
        lineage = Lineage(parent_version=None if parent == BOOTSTRAP_VERSION else parent,
                          log_window_start=self._learned.window_start(campaign), log_window_end=window_end,
                          event_count=learned, code_version=current_code_version())
        artifact = PolicyArtifact(campaign=campaign, policy_name=policy.name, model=model,
                                  config_toml=campaign_policy_toml(runtime.config, policy.params),
                                  lineage=lineage, metrics=self._live_metrics(campaign, parent))
        version = self.registry().publish(artifact, aliases=(CHAMPION,))
        self._published.add((campaign, version))
        current_policy, current_version = runtime.live.current()
        if current_policy is policy:  # nothing swapped meanwhile
            runtime.live.swap(policy, version)
            self._metrics.set_policy_version(campaign, version)
        self._learned.checkpointed(campaign, learned)
        self._last_checkpoint[campaign] = window_end
        self._set_health(True)
        log.info("campaign %s: checkpoint published as version %s (parent %s, %d events)", campaign, version,
                 parent, learned)
        return version

    def _live_metrics(self, campaign: str, version: str) -> dict[str, float]:
        """Live reward of the decisions this version made (learned events only)."""
        stats = self.engine.log.live_stats(campaign, version)
        n = stats.events
        metrics = {"live_events": float(n)}
        if n:
            metrics["live_reward_mean"] = stats.reward_mean
            metrics["share_outside_history"] = stats.outside_history / n
        return metrics

    def _set_health(self, ok: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        self._health.set(REGISTRY_HEALTH, status)
