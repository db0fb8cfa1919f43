"""One simulated world served by a real ``offerbandit serve --port 0`` and driven through DecideBatch and
Reward (``offerbandit.demo.traffic.drive``), and the figures the learning benches take from such a run
(bench_learning.py, bench_habits.py): the served arms' true response probability next to the oracle, mass
marketing, uniform and per-segment rules in hindsight, on the same requests.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from bench.common import ServeProcess
from offers.v1 import decision_pb2_grpc as pb_grpc
from offerbandit.demo.traffic import Step, drive, world_catalog_toml
from simulator import CustomerWorld, WorldConfig, per_segment_rules_rewards


@dataclass(frozen=True)
class WindowValues:
    """Means over a window of steps (the same requests for every column)."""

    served: float
    served_se: float      # standard error over the window's decisions
    customer_se: float    # standard error over the window's customers (each customer's mean counts once)
    oracle: float
    mass: float
    uniform: float
    per_segment: float    # per-segment rules picked in hindsight on these requests


def serve_world(config: WorldConfig, extra: str, workdir: Path, registry_wait_s: float, hash_key: str,
                n_decisions: int) -> list[Step]:
    """Serve ``config``'s catalogue as the default campaign (``extra``: more campaign TOML lines, e.g.
    ``policy = "uniform"``) and drive ``n_decisions`` seeded decisions through it, 32 per DecideBatch."""
    world = CustomerWorld(config)
    toml = f'[privacy]\nuser_hash_key = "{hash_key}"\n' + world_catalog_toml(world, extra=extra)
    with ServeProcess(workdir, toml, registry_wait_s=registry_wait_s) as server:
        channel = grpc.insecure_channel(server.address)
        steps = list(drive(pb_grpc.DecisionServiceStub(channel), world, n_decisions, batch_size=32))
        channel.close()
    return steps


def window_values(steps: Sequence[Step]) -> WindowValues:
    served = np.array([s.expected_reward for s in steps])
    matrix = np.stack([s.expected for s in steps])
    users = np.array([s.user_id for s in steps])
    per_customer = np.array([served[users == u].mean() for u in np.unique(users)])
    customer_se = float(per_customer.std(ddof=1) / np.sqrt(len(per_customer))) if len(per_customer) > 1 else 0.0
    return WindowValues(
        served=float(served.mean()), served_se=float(served.std(ddof=1) / np.sqrt(len(served))),
        customer_se=customer_se, oracle=float(matrix.max(axis=1).mean()),
        mass=float(np.mean([s.best_single_reward for s in steps])),
        uniform=float(np.mean([s.uniform_reward for s in steps])),
        per_segment=float(per_segment_rules_rewards(matrix, np.array([s.segment for s in steps])).mean()))


def last_sixth(steps: Sequence[Step]) -> Sequence[Step]:
    """The run's last sixth: the policy as it ends up (60 decisions per customer: their last ten)."""
    return steps[len(steps) - len(steps) // 6:]


def window_means(values: np.ndarray, n_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """(window centres, window means) of ``values`` cut into ``n_windows`` consecutive windows."""
    edges = np.linspace(0, len(values), n_windows + 1).astype(int)
    centres = (edges[:-1] + edges[1:]) / 2
    return centres, np.array([values[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])


def seed_mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean over seeds and its standard error (0 with a single seed)."""
    array = np.asarray(values, dtype=np.float64)
    se = float(array.std(ddof=1) / np.sqrt(len(array))) if len(array) > 1 else 0.0
    return float(array.mean()), se
