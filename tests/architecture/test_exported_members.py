"""Each package's public API is exactly its ``__all__`` (after httpx's tests/test_exported_members.py).

A name added to a package without adding it to ``__all__`` (or left in ``__all__`` after removal)
fails here; submodules and ``from __future__`` features are not public names.
"""
from __future__ import annotations

import __future__
import importlib
import inspect
import subprocess
import sys

import pytest

PACKAGES = [
    "offerbandit", "offerbandit.checks", "offerbandit.cli", "offerbandit.client", "offerbandit.demo", "offerbandit.errors", "offerbandit.lazy",
    "offerbandit.reports", "policies", "policies.history", "policies.vw", "decision_log", "policy_registry",
    "offline_eval", "service", "simulator",
]


def _imported_helper(module, name: str) -> bool:
    """A class or function imported from outside the package under its own name (``Path``, ``Any``)."""
    value = getattr(module, name)
    home = getattr(value, "__module__", None)
    return home is not None and not str(home).startswith(module.__name__) and getattr(value, "__name__", None) == name


def _public_names(module) -> set[str]:
    return {name for name in dir(module)
            if not name.startswith("_")
            and not inspect.ismodule(getattr(module, name))
            and not isinstance(getattr(module, name), __future__._Feature)
            and not _imported_helper(module, name)}


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names(name):
    module = importlib.import_module(name)
    assert list(module.__all__) == sorted(module.__all__), "keep __all__ sorted"
    assert set(module.__all__) - {"__version__"} == _public_names(module)
    for member in module.__all__:
        assert getattr(module, member) is not None


def test_a_name_missing_from_all_is_caught(monkeypatch):
    module = importlib.import_module("decision_log")
    monkeypatch.setattr(module, "NotExported", object(), raising=False)
    assert "NotExported" in _public_names(module) - set(module.__all__)


def test_importing_offerbandit_loads_neither_mlflow_vw_nor_numpy():
    code = ("import sys, offerbandit; "
            "print(*(m in sys.modules for m in ('mlflow', 'vowpalwabbit', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]
