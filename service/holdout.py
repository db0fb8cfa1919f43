"""The holdout: a randomised control group per campaign, kept out of personalisation to measure lift.

A customer is in campaign C's holdout when ``u(customer, C) < holdout``, where ``u`` is uniform on [0, 1)
from a keyed hash (HMAC-SHA256 under the server's draw-seed key, which every process on a log shares) of
the campaign and the customer's user key. The assignment is a pure function: a customer stays in or out
across calls, restarts and replicas, and raising the share only adds customers (everyone with
``u < old share`` stays in).

A held-out customer gets ``holdout_treatment``: ``no_contact`` (nothing sent) or ``baseline`` (the
request's ``baseline`` arm, when the contact rules leave it eligible; otherwise nothing). Either is logged
with the label ``holdout`` and the probability of what was served (1), its reward stored, never learned
and never part of off-policy evaluation of the policy (``decision_log.counting.held_out``).
"""
from __future__ import annotations

import hashlib
import hmac

import numpy as np

from policies.sampler import HOLDOUT
from policies.types import ArmSet, JointArm
from service.config import HOLDOUT_TREATMENTS

__all__ = ["HOLDOUT", "HOLDOUT_TREATMENTS", "held_out_arm", "holdout_position", "in_holdout", "one_hot"]

_SCALE = float(2 ** 64)


def holdout_position(key: bytes, campaign: str, user_key: str) -> float:
    """The customer's uniform draw ``u`` in [0, 1) for ``campaign`` (fixed per key, campaign and customer)."""
    digest = hmac.new(key, b"offerbandit/holdout/v1\x00" + campaign.encode("utf-8") + b"\x00"
                      + user_key.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def in_holdout(key: bytes, campaign: str, user_key: str, share: float) -> bool:
    return share > 0.0 and holdout_position(key, campaign, user_key) < share


def held_out_arm(eligible: ArmSet, treatment: str, baseline: JointArm | None) -> int | None:
    """The index in ``eligible`` of what a held-out customer gets: the baseline arm under ``baseline``
    treatment if the contact rules left it eligible, else None (no contact)."""
    if treatment != "baseline" or baseline is None:
        return None
    try:
        return eligible.arms.index(baseline)
    except ValueError:
        return None


def one_hot(n: int, index: int) -> np.ndarray:
    pmf = np.zeros(n, dtype=np.float64)
    pmf[index] = 1.0
    return pmf
