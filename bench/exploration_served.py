"""The exploration benefit measured on the product: the served VW policy through the real server.

For each world seed, two fresh ``offerbandit serve --port 0`` subprocesses serve the same simulated world
(`simulator.CustomerWorld`: 12 offers, base rate 0.03, half the customers with a *latent* interest, a
category they like a lot but were never shown) with the default campaign: the default VW policy and
the default novelty component (``NoveltyConfig()``, β = 0.1), one of them with ``[campaigns.default.novelty]
beta = 0`` (the policy's own exploration only). The same seeded request stream and event ids go through
DecideBatch and every response comes back through Reward (`offerbandit.demo.traffic.drive`), so both
learn online exactly as in production. Measured per run:

- hidden interests found: customers with a latent interest who answered an offer of that category;
- of those, found first on a draw labelled ``explore_outside_history`` (the novelty component's);
- mean true response probability of the served arms (no sampling noise) and its standard error;
- the share of draws from the novelty component.

Unlike the in-process study in bench/bench_exploration.py there is no legacy warm start: every customer
starts with no history, as on a new campaign, and the server's own history store decides what is
"outside the history".
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from bench.common import OUT_DIR, ServeProcess
from offerbandit.demo.traffic import drive, world_catalog_toml
from offers.v1 import decision_pb2_grpc as pb_grpc
from policies.sampler import EXPLORE_OUTSIDE_HISTORY
from simulator import CustomerWorld, WorldConfig
from simulator.config import CATEGORIES

__all__ = ["ServedRun", "served_comparison", "served_lines", "world_config"]

#: the β of the served default (NoveltyConfig().beta) against no novelty component
BETAS = (0.1, 0.0)


@dataclass(frozen=True)
class ServedRun:
    seed: int
    beta: float
    decisions: int
    mean_true_reward: float
    stderr: float
    hidden_customers: int
    discovered: int
    discovered_by_novelty: int
    novelty_share: float


def world_config(seed: int, n_customers: int) -> WorldConfig:
    """The world of the in-process study (bench_exploration.compare), at this seed."""
    return WorldConfig(seed=seed, n_customers=n_customers, n_offers=12, base_rate=0.03, latent_share=0.5)


def served_run(seed: int, beta: float, n_customers: int, per_customer: int, workdir: Path,
               registry_wait_s: float) -> ServedRun:
    world = CustomerWorld(world_config(seed, n_customers))
    categories = CATEGORIES[:world.config.n_categories]
    hidden = {u for u in world.user_ids if any(world.is_latent(u, c) for c in categories)}
    config = ('[privacy]\nuser_hash_key = "bench-exploration-hash-key"\n' + world_catalog_toml(world)
              + f"[campaigns.default.novelty]\nbeta = {beta!r}\n")
    found: set[str] = set()
    by_novelty = novelty_draws = 0
    rewards = []
    with ServeProcess(workdir / f"seed{seed}-beta{beta}", config, registry_wait_s=registry_wait_s) as server:
        channel = grpc.insecure_channel(server.address)
        stub = pb_grpc.DecisionServiceStub(channel)
        for step in drive(stub, world, per_customer * n_customers, batch_size=32):
            rewards.append(step.expected_reward)
            novelty_draws += step.exploration == EXPLORE_OUTSIDE_HISTORY
            if step.latent_discovery and step.user_id not in found:
                found.add(step.user_id)
                by_novelty += step.exploration == EXPLORE_OUTSIDE_HISTORY
        channel.close()
    values = np.asarray(rewards)
    return ServedRun(seed=seed, beta=beta, decisions=len(values), mean_true_reward=float(values.mean()),
                     stderr=float(values.std(ddof=1) / np.sqrt(len(values))), hidden_customers=len(hidden),
                     discovered=len(found), discovered_by_novelty=by_novelty,
                     novelty_share=novelty_draws / len(values))


def served_comparison(seeds: tuple[int, ...], n_customers: int, per_customer: int,
                      registry_wait_s: float) -> list[tuple[ServedRun, ServedRun]]:
    """(β = 0.1, β = 0) runs per seed, each on a fresh server."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-exploration-served-", dir=OUT_DIR))
    try:
        return [tuple(served_run(seed, beta, n_customers, per_customer, workdir, registry_wait_s)
                      for beta in BETAS) for seed in seeds]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def served_lines(pairs: list[tuple[ServedRun, ServedRun]]) -> list[str]:
    """The table, the totals and the goal line (novelty on against off, on the served policy)."""
    lines = [f"{'seed':>5s}{'beta':>6s}{'decisions':>10s}{'true reward':>12s}{'+- se':>8s}{'found':>11s}"
             f"{'by novelty':>11s}{'novelty%':>9s}"]
    for pair in pairs:
        for run in pair:
            lines.append(f"{run.seed:5d}{run.beta:6.2f}{run.decisions:10d}{run.mean_true_reward:12.4f}"
                         f"{run.stderr:8.4f}{run.discovered:6d}/{run.hidden_customers:<4d}"
                         f"{run.discovered_by_novelty:11d}{100 * run.novelty_share:9.1f}")
    on, off = [p[0] for p in pairs], [p[1] for p in pairs]
    found_on, found_off = sum(r.discovered for r in on), sum(r.discovered for r in off)
    reward_on = float(np.mean([r.mean_true_reward for r in on]))
    reward_off = float(np.mean([r.mean_true_reward for r in off]))
    found_ratio = found_on / found_off if found_off else float("nan")
    reward_ratio = reward_on / reward_off
    per_seed = [a.discovered / b.discovered for a, b in zip(on, off) if b.discovered]
    spread = f"{min(per_seed):.2f}-{max(per_seed):.2f}" if per_seed else "n/a"
    lines.append(f"served VW, novelty beta 0.1 / beta 0: hidden interests found x{found_ratio:.2f} "
                 f"({found_on} vs {found_off} of {sum(r.hidden_customers for r in on)}; per seed {spread}), "
                 f"true reward x{reward_ratio:.3f} ({reward_on:.4f} vs {reward_off:.4f}), "
                 f"novelty draws {100 * np.mean([r.novelty_share for r in on]):.1f}%")
    met = found_ratio >= 2.0 and reward_ratio >= 1.0
    lines.append(f"GOAL discovery_served: the served VW policy with the default novelty component finds "
                 f"x{found_ratio:.2f} as many hidden interests as without it (target >= 2) at true reward "
                 f"x{reward_ratio:.3f} (target >= 1), seeds {', '.join(str(p[0].seed) for p in pairs)} "
                 f"-> {'met' if met else 'NOT met'}")
    return lines
