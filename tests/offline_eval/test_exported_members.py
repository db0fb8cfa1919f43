"""The public names of the offline_eval package are exactly their ``__all__`` (after httpx's test)."""
import importlib
import inspect

import pytest

PACKAGES = ["offline_eval"]


def _public_members(package) -> set[str]:
    names = set(dir(package))
    return {
        name for name in names
        if not name.startswith("_")
        and not inspect.ismodule(getattr(package, name))
        and getattr(getattr(package, name), "__module__", package.__name__).startswith(package.__name__)
    }


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_members(name):
    package = importlib.import_module(name)
    assert package.__all__ == sorted(package.__all__), "keep __all__ sorted"
    assert set(package.__all__) == _public_members(package)
    for member in package.__all__:
        assert getattr(package, member) is not None
