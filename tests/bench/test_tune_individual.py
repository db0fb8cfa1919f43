"""The tuning script keeps the learning bench's report seeds held out (bench/tune_individual.py)."""
from __future__ import annotations

import argparse

import pytest

from bench.bench_learning import INDIVIDUAL_REPORT_SEEDS, INDIVIDUAL_TUNING_SEEDS
from bench.tune_individual import parse_seeds


def test_tuning_seeds_are_accepted():
    text = ",".join(str(seed) for seed in INDIVIDUAL_TUNING_SEEDS)
    assert parse_seeds(text) == INDIVIDUAL_TUNING_SEEDS


@pytest.mark.parametrize("seed", sorted({s for seeds in INDIVIDUAL_REPORT_SEEDS.values() for s in seeds}))
def test_every_report_seed_is_refused(seed):
    with pytest.raises(argparse.ArgumentTypeError, match=f"{seed}.*report seeds"):
        parse_seeds(f"{INDIVIDUAL_TUNING_SEEDS[0]},{seed}")


def test_a_seed_that_is_not_an_integer_is_refused():
    with pytest.raises(argparse.ArgumentTypeError, match="integers"):
        parse_seeds("101,abc")
