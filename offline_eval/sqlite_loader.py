"""The decision-log loader's old name, kept so existing imports work: see `offline_eval.log_dataset`."""
from offline_eval.log_dataset import (DEFAULT_CHUNK, Exclusions, LogFilter, LoggedDataset, campaigns_in_log,
                                      load_dataset, resolve_campaign)

__all__ = ["DEFAULT_CHUNK", "Exclusions", "LogFilter", "LoggedDataset", "campaigns_in_log", "load_dataset",
           "resolve_campaign"]
