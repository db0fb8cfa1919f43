"""Drive simulated customers through a running server over gRPC: decide, answer, reward.

Used by ``offerbandit demo``, the end-to-end tests and the benchmarks, so all three exercise the
same client path a backend would.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import numpy as np

from offers.v1 import decision_pb2 as pb
from offers.v1 import decision_pb2_grpc as pb_grpc
from policies.types import ArmSet, JointArm
from service.config_toml import catalog_toml
from simulator import CustomerWorld, SimRequest


@dataclass(frozen=True, slots=True)
class Step:
    """One simulated decision and what came of it."""

    index: int
    event_id: str
    user_id: str
    arm: JointArm | None
    probability: float
    exploration: str
    policy_version: str
    reward: float
    expected_reward: float      # the chosen arm's true response probability
    oracle_reward: float        # the best arm's true response probability
    uniform_reward: float       # mean over arms: what a uniform random policy expects
    best_single_reward: float   # what mass marketing (one arm for all) expects here
    latent_discovery: bool      # a positive response on a latent interest of this customer
    segment: str = ""
    expected: np.ndarray | None = None  # every catalogue arm's true response probability (arm order)
    chosen_index: int = -1              # the chosen arm's index in the catalogue arm set


def catalog_request(world: CustomerWorld, request: SimRequest, campaign: str = "",
                    baseline: JointArm | None = None) -> pb.DecideRequest:
    """A DecideRequest carrying the simulated context; candidates come from the server's catalogue;
    ``baseline``: the caller's own choice (what a holdout customer gets under ``holdout_treatment = "baseline"``).

    The event id is derived from the world's seed and the request's index, so a rerun draws with the
    same seeds (only the background learner's timing still varies between runs)."""
    message = pb.DecideRequest(user_id=request.user_id, campaign=campaign,
                               event_id=f"sim{world.config.seed}-{campaign or 'default'}-{request.index}")
    if baseline is not None:
        message.baseline.CopyFrom(pb.Arm(offer_id=baseline.offer_id, format=baseline.format,
                                         time_slot=baseline.time_slot))
    message.context.update(dict(request.context))
    message.numeric.update(dict(request.numeric))
    return message


def world_catalog_toml(world: CustomerWorld, campaign: str = "default", extra: str = "") -> str:
    """The TOML catalogue section that serves exactly the world's offers, formats and time slots."""
    catalog = world.catalog
    return catalog_toml(campaign, catalog.offers, catalog.formats, catalog.time_slots, extra=extra)


def drive(stub: pb_grpc.DecisionServiceStub, world: CustomerWorld, n_decisions: int, *, batch_size: int = 32,
          campaign: str = "", metadata: tuple | None = None, timeout: float = 30.0,
          on_batch: Callable[[int], None] | None = None, mass_marketing_baseline: bool = False,
          ordered_rewards: bool = False) -> Iterator[Step]:
    """Run ``n_decisions`` simulated decisions through ``stub`` in DecideBatch calls; yield each step.
    ``mass_marketing_baseline``: every request names the best single arm as its ``baseline``.
    ``ordered_rewards``: each Reward waits for the one before (they reach the log, hence the learner, in
    decision order; by default a batch's rewards are in flight together and commit in any order)."""
    arm_set: ArmSet = world.arm_set
    best = world.best_single_arm()
    best_index = arm_set.arms.index(best)
    baseline = best if mass_marketing_baseline else None
    arm_index = {arm: i for i, arm in enumerate(arm_set.arms)}
    done = 0
    steps: list[Step] = []
    while done < n_decisions:
        requests = [world.next_request() for _ in range(min(batch_size, n_decisions - done))]
        response = stub.DecideBatch(pb.DecideBatchRequest(requests=[catalog_request(world, r, campaign, baseline)
                                                                    for r in requests]),
                                    timeout=timeout, metadata=metadata)
        pending = []
        for request, decision in zip(requests, response.decisions):
            expected = world.expected_rewards(request, arm_set)
            arm = JointArm(decision.offer_id, decision.format, decision.time_slot) if decision.offer_id else None
            chosen_index = arm_index[arm] if arm else -1
            chosen_expected = float(expected[chosen_index]) if arm else 0.0
            reward = world.respond(request, arm)
            category = arm_set.offers[arm.offer_id].category if arm else ""
            pending.append(stub.Reward.future(pb.RewardRequest(event_id=decision.event_id, value=reward),
                                              timeout=timeout, metadata=metadata))
            if ordered_rewards:
                pending[-1].result()
            steps.append(Step(index=request.index, event_id=decision.event_id, user_id=request.user_id, arm=arm,
                       probability=decision.probability, exploration=decision.exploration,
                       policy_version=decision.policy_version, reward=reward, expected_reward=chosen_expected,
                       oracle_reward=float(expected.max()), uniform_reward=float(expected.mean()),
                       best_single_reward=float(expected[best_index]),
                       latent_discovery=bool(reward > 0 and arm is not None
                                             and world.is_latent(request.user_id, category)),
                              segment=request.context.get("segment", ""), expected=expected,
                              chosen_index=chosen_index))
        for future in pending:  # rewards of one batch share group commits; all acknowledged here
            future.result()
        yield from steps
        steps.clear()
        done += len(requests)
        if on_batch is not None:
            on_batch(len(requests))


def channel_for(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
