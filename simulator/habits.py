"""The individual-habit world's preferences: each customer's own favourite category, format and send slot.

In the segment world (:mod:`simulator.population`) preferences are mostly a function of the context a
marketer sees. Here each customer gets a favourite category, a favourite format and a favourite send
slot of their own, each a large additive term on the log-odds; with probability ``SEGMENT_HINT`` the
favourite is the one the segment's table points to, otherwise it is drawn uniformly, so the segment is
only weakly informative. A faint copy of the segment tables (``SEGMENT_SHRINK``) and small individual
noise sit underneath. The draws come from a stream of their own, so the segment world is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.config import CATEGORIES, KNOWN_FORMATS, KNOWN_TIME_SLOTS, WorldConfig

__all__ = ["IndividualHabits", "draw_individual_habits"]

SEGMENT_HINT = 0.25          # chance a favourite is the segment's own (else uniform)
SEGMENT_SHRINK = 0.25        # how much of the segment world's tables remains
INDIVIDUAL_NOISE_SD = 0.2
FAVOURITE_CATEGORY_BONUS = 2.2
FAVOURITE_FORMAT_BONUS = 1.4
FAVOURITE_SLOT_BONUS = 1.0


@dataclass(frozen=True, eq=False)
class IndividualHabits:
    """Per-customer arrays that replace the segment world's ones (same shapes as in ``Population``)."""

    channel_slot: np.ndarray      # (n, formats, slots)
    category: np.ndarray          # (n, categories + 1), trailing neutral 0
    favourite_category: np.ndarray  # (n,)
    favourite_format: np.ndarray    # (n,)
    favourite_slot: np.ndarray      # (n,)


def _favourite(rng: np.random.Generator, segment_choice: np.ndarray, n_values: int) -> np.ndarray:
    """The segment's choice with probability ``SEGMENT_HINT``, else a uniform draw."""
    n = len(segment_choice)
    hinted = rng.random(n) < SEGMENT_HINT
    return np.where(hinted, segment_choice, rng.integers(0, n_values, size=n))


def draw_individual_habits(config: WorldConfig, rng: np.random.Generator, segment_channel_slot: np.ndarray,
                           segment_category: np.ndarray) -> IndividualHabits:
    """Individual preferences around faint segment tables.

    ``segment_channel_slot`` (n, formats, slots) and ``segment_category`` (n, n_categories) are the
    segment world's per-customer terms; their argmax is the segment's hint.
    """
    n, n_formats, n_slots = segment_channel_slot.shape
    n_cat = config.n_categories
    flat_best = segment_channel_slot.reshape(n, -1).argmax(axis=1)
    fav_format = _favourite(rng, flat_best // n_slots, n_formats)
    fav_slot = _favourite(rng, flat_best % n_slots, n_slots)
    fav_category = _favourite(rng, segment_category[:, :n_cat].argmax(axis=1), n_cat)

    channel_slot = SEGMENT_SHRINK * segment_channel_slot + rng.normal(0.0, INDIVIDUAL_NOISE_SD,
                                                                      size=(n, n_formats, n_slots))
    channel_slot += FAVOURITE_FORMAT_BONUS * (np.arange(n_formats)[None, :, None] == fav_format[:, None, None])
    channel_slot += FAVOURITE_SLOT_BONUS * (np.arange(n_slots)[None, None, :] == fav_slot[:, None, None])

    category = np.zeros((n, len(CATEGORIES) + 1))
    category[:, :n_cat] = SEGMENT_SHRINK * segment_category[:, :n_cat] + rng.normal(
        0.0, INDIVIDUAL_NOISE_SD, size=(n, n_cat))
    category[np.arange(n), fav_category] += FAVOURITE_CATEGORY_BONUS
    assert n_formats == len(KNOWN_FORMATS) and n_slots == len(KNOWN_TIME_SLOTS)
    return IndividualHabits(channel_slot=channel_slot, category=category, favourite_category=fav_category,
                            favourite_format=fav_format, favourite_slot=fav_slot)
