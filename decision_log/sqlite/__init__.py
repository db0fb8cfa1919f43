"""The SQLite backend of the decision log: one file in WAL mode, one writer thread with group commit,
readers on their own connections. Callers use `decision_log.DecisionLog`, never this package."""
from decision_log.sqlite.backend import LOG_FILE, SqliteBackend, log_path

__all__ = ["LOG_FILE", "SqliteBackend", "log_path"]
