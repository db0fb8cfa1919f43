"""The PostgreSQL backend of the decision log: several processes (replicas, the learner) share one log.
Callers use `decision_log.DecisionLog` (``open_log("postgresql://...")``), never this package."""
from decision_log.postgres.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
