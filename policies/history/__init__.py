"""Per-user contact history: what each customer was shown and answered, for caps and novelty.

- ``records``: the store's bounds (:class:`HistoryConfig`), the rows it rebuilds from
  (:class:`HistoryRecord`) and the frozen view a decision reads (:class:`UserHistory`);
- ``user``: one user's time-sorted, reference-counted entries and :class:`UserHandle`, the
  read-modify-write API on a locked user;
- ``store``: :class:`UserHistoryStore`, every user behind an LRU bound and a time horizon, loaded
  from the log (a :data:`HistoryLoader`) when not held;
- ``customer``: :func:`customer_features`, the per-customer aggregates a decision uses and logs.
"""
from policies.history.customer import customer_features
from policies.history.records import HISTORY_DIMENSIONS, HistoryConfig, HistoryRecord, UserHistory
from policies.history.store import HistoryLoader, UserHistoryStore
from policies.history.user import UserHandle

__all__ = [
    "HISTORY_DIMENSIONS",
    "HistoryConfig",
    "HistoryLoader",
    "HistoryRecord",
    "UserHandle",
    "UserHistory",
    "UserHistoryStore",
    "customer_features",
]
