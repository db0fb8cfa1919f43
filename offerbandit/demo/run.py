"""``offerbandit demo``: the whole system on embedded defaults, in a few minutes.

1. start a real server on a free loopback port with a local data dir (SQLite log, MLflow store);
2. drive simulated customers through gRPC (DecideBatch + Reward) while the policy learns online
   and its checkpoints become MLflow versions (champion moves along the lineage);
3. train a challenger counterfactually on the log so far, register it and point ``challenger`` at
   it: from then on it is shadow-scored on live traffic;
4. serve an evaluation window; evaluate champion, challenger and baselines offline on it, and
   compare an off-policy estimate with the value the simulator knows to be true;
5. log product-owner runs to MLflow (metrics + plots) and print a summary.

The world runs without fatigue or drift so the single-step off-policy estimates are comparable with
the simulator's truth (their assumption is that actions do not change future rewards).
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from offerbandit.errors import InvalidInput
from offline_eval import LoggedFeedback, evaluate
from decision_log import RewardDefaults
from policies.contract import Policy, learn_in_batches
from policies.factory import make_policy
from policies.types import DecisionContext
from policy_registry import CHALLENGER, Lineage, PolicyArtifact, current_code_version
from service.config import ServiceConfig, parse_config
from service.config_toml import campaign_policy_toml
from service.server import DecisionServer
from offerbandit.reports.versions import log_version_reports
from offerbandit.demo.lift import DemoLift, demo_lift
from offerbandit.demo.traffic import Step, channel_for, drive, world_catalog_toml
from simulator import CustomerWorld, WorldConfig, per_segment_rules_rewards

from offers.v1 import decision_pb2_grpc as pb_grpc


#: customers per world by default: on the individual world ~64 decisions per customer over the default 16,000
#: (a customer's own habits need several of their own decisions to show); on the segment world what is
#: learned is shared by the segment, so more customers with fewer decisions each
DEMO_CUSTOMERS: dict[str, int] = {"individual": 250, "segment": 3000}


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    decisions: int = 12000
    eval_decisions: int = 4000
    seed: int = 7
    #: None: the world's default (`DEMO_CUSTOMERS`)
    customers: int | None = None
    batch_size: int = 64
    checkpoint_every: int = 3000
    #: the simulator world (`simulator.WorldConfig.habits`): "individual" (each customer's own favourite
    #: category, format and slot) or "segment" (preferences mostly from the context a marketer sees)
    world: str = "individual"
    #: per-customer features ([campaigns.<c>] personal_features); None: on for the individual world only (on
    #: the segment world, ~5 decisions per customer, they did not help: docs/demo-runs/seed-7-segment-features.json)
    personal_features: bool | None = None
    #: each Reward waits for the one before and each batch for the learner to have learned (and published) the
    #: rewards before it: a repeatable run whatever else the machine does (off: learning runs beside serving,
    #: as in production, and lags on a busy machine)
    lockstep: bool = False

    def __post_init__(self) -> None:
        if self.world not in DEMO_CUSTOMERS:
            raise InvalidInput(f"--world must be one of {', '.join(DEMO_CUSTOMERS)}, got {self.world!r}",
                               field="world")
        if self.customers is None:
            object.__setattr__(self, "customers", DEMO_CUSTOMERS[self.world])
        if self.personal_features is None:
            object.__setattr__(self, "personal_features", self.world == "individual")
        if self.decisions < 200:
            raise InvalidInput("--decisions must be at least 200", field="decisions")
        if self.eval_decisions < 100:
            raise InvalidInput("--eval-decisions must be at least 100", field="eval_decisions")
        if self.customers < 10:
            raise InvalidInput("--customers must be at least 10", field="customers")


@dataclass(frozen=True)
class PolicyValue:
    name: str
    value: float
    stderr: float = 0.0


@dataclass(frozen=True)
class OpeCheck:
    policy: str
    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    true_value: float
    effective_sample_size: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def covered(self) -> bool:
        return self.ci_low <= self.true_value <= self.ci_high


@dataclass(frozen=True)
class DemoSummary:
    data_dir: str
    tracking_uri: str
    world: str
    customers: int
    personal_features: bool
    decisions: int
    learning_decisions: int
    eval_decisions: int
    live: tuple[PolicyValue, ...]
    fraction_of_oracle: float
    exploration_share: dict[str, float]
    latent_discoveries: int
    versions: tuple[str, ...]
    champion: str
    challenger: str
    shadow_scored: int
    ope: tuple[OpeCheck, ...]
    lift: DemoLift
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    lockstep: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float)


#: the demo's reward windows (every simulated reward arrives within a second of its decision, so a short window
#: loses none and lets lift count every decision by the end of the run)
REWARD_WINDOW_S = 10.0
#: the share of customers in the demo's control group; they get the mass-marketing arm (the request's
#: ``baseline``: what the company did before), so the lift is offerbandit's over it
HOLDOUT_SHARE = 0.2


def demo_config(world: CustomerWorld, options: DemoOptions) -> ServiceConfig:
    windows = ", ".join(f"{fmt} = {REWARD_WINDOW_S:g}" for fmt in world.catalog.formats)
    extra = (f"reward_window_seconds = {REWARD_WINDOW_S:g}\nreward_windows = {{ {windows} }}\n"
             f"holdout = {HOLDOUT_SHARE}\nholdout_treatment = \"baseline\"\n"
             f"personal_features = {'true' if options.personal_features else 'false'}\n")
    every = max(100, min(options.checkpoint_every, options.decisions // 3))
    text = (f"[learning]\nregistry_poll_seconds = 1.0\ncheckpoint_every_events = {every}\n"
            f"checkpoint_every_seconds = 3600\n[privacy]\nuser_hash_key = \"offerbandit-demo-seed-{options.seed}\"\n"
            + world_catalog_toml(world, extra=extra))
    return parse_config(text)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _live_values(steps: list[Step]) -> tuple[PolicyValue, ...]:
    """True expected response per decision of the served policy and references, on the same requests (the
    treated ones: a holdout customer is served the baseline, not the policy)."""
    steps = [s for s in steps if s.exploration != "holdout"]
    served = np.array([s.expected_reward for s in steps])
    matrix = np.stack([s.expected for s in steps])
    per_segment = per_segment_rules_rewards(matrix, np.array([s.segment for s in steps]))
    return (
        PolicyValue("offerbandit (learned, served live)", *_mean_se(served)),
        PolicyValue("oracle (knows each customer)", *_mean_se(matrix.max(axis=1))),
        PolicyValue("per-segment rules (best arm per segment)", *_mean_se(per_segment)),
        PolicyValue("mass marketing (best single arm)", *_mean_se(np.array([s.best_single_reward for s in steps]))),
        PolicyValue("uniform random", *_mean_se(matrix.mean(axis=1))),
    )


def _train_counterfactual(server: DecisionServer, params: dict[str, object], until_seq: int) -> Policy:
    """A fresh VW policy trained on the log's learned events up to ``until_seq`` (IPS via VW's cb)."""
    policy = make_policy("vw", **params)
    learn_in_batches(policy, server.engine.log.learning_events(RewardDefaults(), up_to_seq=until_seq), 512)
    return policy


def _ope_checks(steps: list[Step], contexts: dict[str, DecisionContext], world: CustomerWorld,
                targets: dict[str, Policy], seed: int) -> tuple[OpeCheck, ...]:
    """Off-policy estimates of each target on the evaluation window vs the simulator's true value."""
    arm_set = world.arm_set
    rewarded = [s for s in steps if s.arm is not None and s.exploration != "holdout"]  # the policy's draws
    feedback = LoggedFeedback(action=np.array([s.chosen_index for s in rewarded]),
                              reward=np.array([s.reward for s in rewarded]),
                              pscore=np.array([s.probability for s in rewarded]))
    matrix = np.stack([s.expected for s in rewarded])
    checks = []
    items = [(contexts[s.event_id], arm_set) for s in rewarded]
    for name, policy in targets.items():
        target = np.stack(policy.pmf_batch(items))
        true_value = float((target * matrix).sum(axis=1).mean())
        result = evaluate(feedback, target, estimators=["ipw", "snipw"], n_bootstrap=200, random_state=seed)
        for estimator in ("ipw", "snipw"):
            r = result[estimator]
            checks.append(OpeCheck(name, estimator, r.value, r.ci_low, r.ci_high, true_value,
                                   float(result.diagnostics.effective_sample_size), tuple(result.warnings)))
    return tuple(checks)


def run_demo(options: DemoOptions, *, progress: Callable[[str, int, int], None] | None = None) -> DemoSummary:
    started = time.time()
    progress = progress or (lambda phase, done, total: None)
    world = CustomerWorld(WorldConfig(seed=options.seed, n_customers=options.customers, fatigue=False, drift=False,
                                      habits=options.world))
    config = demo_config(world, options)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    server = DecisionServer(config, options.data_dir, port=0, start_registry=True)
    server.start()
    notes: list[str] = []
    try:
        stub = pb_grpc.DecisionServiceStub(channel_for(f"127.0.0.1:{server.port}"))
        steps: list[Step] = []
        total = options.decisions + options.eval_decisions

        def on_batch(phase: str, done: Callable[[], int]) -> Callable[[int], None]:
            def report(_: int) -> None:
                if options.lockstep:
                    server.learner.wait_idle(60)
                progress(phase, done(), total)
            return report

        for step in drive(stub, world, options.decisions, batch_size=options.batch_size, mass_marketing_baseline=True,
                          ordered_rewards=options.lockstep, on_batch=on_batch("learning online", lambda: len(steps))):
            steps.append(step)
        server.learner.wait_idle(60)
        if server.registry is not None:
            server.registry.checkpoint("default")  # the learned model as a version before the challenger
        learned_until = server.engine.log.last_seq()
        champion_params = dict(config.campaigns["default"].policy_params)
        # A softer explorer than the champion, so its pmf overlaps the logged traffic
        challenger_params = {**champion_params, "squarecb_gamma_scale": 30.0, "learning_rate": 0.3}
        challenger_policy = _train_counterfactual(server, challenger_params, learned_until)
        registry = server.registry.registry() if server.registry else None
        challenger_version = ""
        champion_version = server.engine.campaigns["default"].live.version
        if registry is not None:
            artifact = PolicyArtifact(
                campaign="default", policy_name="vw", model=challenger_policy.save(),
                config_toml=campaign_policy_toml(config.campaigns["default"], challenger_policy.params),
                lineage=Lineage(None, None, time.time(), int(learned_until or 0), current_code_version()),
                metrics={"train_events": float(learned_until or 0)})
            challenger_version = registry.publish(artifact, aliases=(CHALLENGER,))
            deadline = time.time() + 30
            while server.engine.campaigns["default"].challenger is None and time.time() < deadline:
                time.sleep(0.1)
        else:
            notes.append("MLflow registry disabled: no versions registered")
        eval_steps: list[Step] = []
        for step in drive(stub, world, options.eval_decisions, batch_size=options.batch_size,
                          mass_marketing_baseline=True, ordered_rewards=options.lockstep,
                          on_batch=on_batch("evaluation window", lambda: len(steps) + len(eval_steps))):
            eval_steps.append(step)
        last_decided = time.time()
        server.learner.wait_idle(60)
        server.shadow.wait_idle(60)
        if server.registry is not None:
            server.registry.checkpoint("default")
        progress("offline evaluation", total, total)
        summary_steps = steps + eval_steps
        live = _live_values(summary_steps[len(summary_steps) // 2:])
        oracle = live[1].value
        exploration = defaultdict(int)
        for s in summary_steps:
            exploration[s.exploration] += 1
        shares = {k: v / len(summary_steps) for k, v in sorted(exploration.items())}
        versions = tuple(sorted({s.policy_version for s in summary_steps}, key=_version_key))
        champion_version = server.engine.campaigns["default"].live.version
        shadow = server.engine.log.count("shadow_scores")
        if registry is not None:
            progress("product-owner reports to MLflow", total, total)
            log_version_reports(options.data_dir, registry)
        ope = _ope_for_window(server, world, eval_steps, challenger_policy, options.seed)
        progress("lift over the holdout", total, total)
        time.sleep(max(0.0, last_decided + REWARD_WINDOW_S + 0.5 - time.time()))  # every window closed
        lift = demo_lift(server, config)
        tracking_uri = server.registry.registry_config.tracking_uri if server.registry else ""
        return DemoSummary(
            data_dir=str(options.data_dir), tracking_uri=tracking_uri, world=options.world,
            customers=int(options.customers), personal_features=bool(options.personal_features),
            lockstep=bool(options.lockstep),
            decisions=len(summary_steps),
            learning_decisions=len(steps), eval_decisions=len(eval_steps), live=live,
            fraction_of_oracle=live[0].value / oracle if oracle else 0.0, exploration_share=shares,
            latent_discoveries=sum(s.latent_discovery for s in summary_steps), versions=versions,
            champion=champion_version, challenger=challenger_version, shadow_scored=int(shadow), ope=ope,
            lift=lift, seconds=time.time() - started, notes=tuple(notes))
    finally:
        server.stop(grace=2)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def _ope_for_window(server: DecisionServer, world: CustomerWorld, eval_steps: list[Step], challenger: Policy,
                    seed: int) -> tuple[OpeCheck, ...]:
    """Rebuild each evaluation-window decision's context from the log and check OPE against truth."""
    wanted = {s.event_id for s in eval_steps}
    contexts = {d.event_id: d.context for d in server.engine.log.decisions() if d.event_id in wanted}
    return _ope_checks(eval_steps, contexts, world, {"challenger (counterfactual VW)": challenger,
                                                     "uniform": make_policy("uniform")}, seed)
