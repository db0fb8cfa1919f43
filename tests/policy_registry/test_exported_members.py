"""`policy_registry.__all__` is the package's public surface: every public name, sorted, nothing else."""
from __future__ import annotations

import types

import policy_registry


def test_all_lists_exactly_the_public_names_sorted() -> None:
    public = {name for name, value in vars(policy_registry).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert set(policy_registry.__all__) == public
    assert list(policy_registry.__all__) == sorted(policy_registry.__all__)
