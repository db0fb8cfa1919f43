"""decision_log's public API is its `__all__` (after httpx's tests/test_exported_members.py)."""
from __future__ import annotations

import decision_log


def test_all_is_sorted_and_every_name_exists():
    assert decision_log.__all__ == sorted(decision_log.__all__)
    assert all(hasattr(decision_log, name) for name in decision_log.__all__)


def test_every_public_name_is_exported():
    modules = {"backend", "codec", "counting", "database", "decoder", "export", "records", "sqlite"}
    public = {name for name in dir(decision_log) if not name.startswith("_")} - modules
    assert public == set(decision_log.__all__)
