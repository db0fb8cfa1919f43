"""The public surface of offline_eval: CONTRACT.md section 3 names, and __all__ without drift."""
from __future__ import annotations

import inspect

import offline_eval


def test_exported_members_match_all():
    public = {name for name in vars(offline_eval) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(offline_eval, name))}
    assert set(offline_eval.__all__) == public - modules


def test_contract_names_exist():
    signature = inspect.signature(offline_eval.evaluate)
    assert list(signature.parameters)[:7] == [
        "feedback", "target_pmf", "q_hat", "estimators", "alpha", "n_bootstrap", "random_state"
    ]
    assert signature.parameters["q_hat"].default is None
    assert signature.parameters["estimators"].default is None
    assert signature.parameters["alpha"].default == 0.05
    assert list(inspect.signature(offline_eval.LoggedFeedback).parameters) == ["action", "reward", "pscore"]
    assert list(offline_eval.ESTIMATORS) == [
        "replay", "ipw", "snipw", "dm", "dr", "sndr", "switch_dr", "dr_os"
    ]
