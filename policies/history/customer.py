"""Per-customer features from the history a decision reads: shows and positive responses per category,
format, time slot, offer and (category, format, time slot) cell within the store's horizon, as of the decision (rewards received before it only).

They are computed once, at decision time, stored in the decision's log row as used, and read back from
the row by learning, off-policy evaluation and exports (never recomputed from a later history). A cold
customer (no counted contact within the horizon) has none: the policy falls back to the context.
"""
from __future__ import annotations

from policies.history.records import UserHistory
from policies.types import CUSTOMER_FEATURE_DIMENSIONS, CustomerFeatures

__all__ = ["customer_features"]


def customer_features(history: UserHistory) -> CustomerFeatures | None:
    """``(shown, responded)`` per value of each dimension the customer was shown; None for a cold customer."""
    if history.is_new:
        return None
    counts: dict[str, dict[str, tuple[int, int]]] = {}
    for dimension, _ in CUSTOMER_FEATURE_DIMENSIONS:
        responded = history.responded_counts(dimension)
        shown = history.shown_counts(dimension)
        values = {value: (int(n), int(responded.get(value, 0))) for value, n in shown.items()}
        # a response whose contact already left the horizon still says something about the value
        values.update({value: (0, int(r)) for value, r in responded.items() if value not in values})
        if values:
            counts[dimension] = values
    return CustomerFeatures(counts)
