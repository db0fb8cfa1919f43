"""The public names of ``service`` and ``offerbandit.demo`` are exactly their ``__all__`` (sorted)."""
from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["service", "offerbandit.demo"])
def test_all_lists_exactly_the_public_names(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None
    public = {name for name, value in vars(module).items()
              if not name.startswith("_") and not inspect.ismodule(value)}
    assert public == set(module.__all__)


def test_importing_the_config_does_not_load_the_server():
    code = "import sys, service.config; print('grpc' in sys.modules, 'vowpalwabbit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
