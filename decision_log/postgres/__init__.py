"""The PostgreSQL backend of the decision log: several processes (replicas, the learner) share one log.
Callers use `decision_log.DecisionLog` (``open_log("postgresql://...")``), never this package.

Modules: `connection` (pool, ``?`` adapter, rows, faults, masked URLs), `schema` (versions 1-3 and the plan
for big logs), `writer` (group commit), `write_ops` (decisions with repeats and caps, shadow scores),
`backend` (`PostgresBackend`). Rewards, activations, claims, learn_seq, quarantine and alias moves run the
SQLite backend's operations through the adapter (`decision_log.dialect` holds what differs).
"""
from decision_log.postgres.backend import PostgresBackend
from decision_log.postgres.connection import is_postgres_url, mask_url
from decision_log.postgres.schema import SCHEMA_VERSION

__all__ = ["PostgresBackend", "SCHEMA_VERSION", "is_postgres_url", "mask_url"]
