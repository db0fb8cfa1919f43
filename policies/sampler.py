"""The seeded two-stage draw of one decision, and its exploration label.

The seed is HMAC-SHA256(server secret, campaign, event id): reproducible from the event id by whoever
holds the secret, never steerable by the caller. From the seed, SplitMix64 gives two uniforms: the
first picks the component (novelty with probability β), the second the arm within that component
(inverse CDF over the arms in their order). The probability returned is the mixture's p(arm) — the
marginal probability of the arm over both stages, which is what is logged.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.novelty import Mixture

EXPLOIT = "exploit"
EXPLORE = "explore"
EXPLORE_OUTSIDE_HISTORY = "explore_outside_history"
NO_CONTACT = "no_contact"
HOLDOUT = "holdout"  # the campaign's control group (service/holdout.py): never learned nor evaluated

Component = Literal["policy", "novelty"]

_MASK64 = (1 << 64) - 1


def event_seed(secret: bytes, campaign: str, event_id: str) -> int:
    """A 64-bit seed for one decision: HMAC-SHA256 over the length-prefixed campaign and event id."""
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise InvalidInput("secret must be non-empty bytes (use 32 random bytes)", field="secret")
    for name, value in (("campaign", campaign), ("event_id", event_id)):
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string, got {type(value).__name__}", field=name)
    message = b"".join(len(part).to_bytes(4, "big") + part
                       for part in (campaign.encode("utf-8"), event_id.encode("utf-8")))
    digest = hmac.new(bytes(secret), message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def _splitmix64(state: int) -> tuple[int, int]:
    """One SplitMix64 step: (next state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def _uniforms(seed: int) -> tuple[float, float]:
    """Two independent uniforms in [0, 1) with 53 random bits each."""
    state, a = _splitmix64(seed & _MASK64)
    _, b = _splitmix64(state)
    return (a >> 11) * 2.0**-53, (b >> 11) * 2.0**-53


@dataclass(frozen=True, slots=True)
class Draw:
    """The drawn arm's index in the eligible arm set, its mixture probability and the component."""

    index: int
    probability: float
    component: Component


def _pick(weights: np.ndarray, u: float) -> int:
    """Inverse CDF: the arm whose cumulative interval contains u·Σw. Zero-weight arms are never hit."""
    cumulative = np.cumsum(weights)
    index = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
    if index >= len(weights):  # u·Σ rounded up to Σ: take the last arm with weight
        index = int(np.flatnonzero(weights > 0)[-1])
    return index


def two_stage_draw(mixture: Mixture, seed: int) -> Draw:
    """Draw the component (novelty with probability β), then the arm from it. Same seed, same draw."""
    u_component, u_arm = _uniforms(check_scalar(seed, "seed", int))
    component: Component = "novelty" if u_component < mixture.beta else "policy"
    weights = mixture.q_novel if component == "novelty" else mixture.p_policy
    index = _pick(weights, u_arm)
    return Draw(index=index, probability=float(mixture.p[index]), component=component)


def exploration_label(draw: Draw, p_policy: np.ndarray) -> str:
    """``explore_outside_history`` for a novelty draw; else ``exploit`` when the arm is p_policy's
    argmax, ``explore`` otherwise. Ties for the argmax go to the lowest index (so under a uniform
    policy only the first arm is ``exploit``)."""
    if draw.component == "novelty":
        return EXPLORE_OUTSIDE_HISTORY
    return EXPLOIT if draw.index == int(np.argmax(p_policy)) else EXPLORE
