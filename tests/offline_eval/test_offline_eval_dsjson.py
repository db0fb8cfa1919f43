"""The streaming DSJSON (cb_adf) loader: record shape as in VW's test/train-sets/dsjson_cb.json."""
from __future__ import annotations

import json

import numpy as np
import pytest

from offline_eval import RaggedMatrix, evaluate
from offline_eval.dsjson import iter_dsjson, load_dsjson
from offerbandit.errors import InvalidInput


def record(event_id, chosen_id, ids, pmf, cost, n_actions=None, **extra):
    """A decision record in VW/rlclientlib style: ``a`` and ``p`` in pmf order, ids 1-based."""
    n_actions = n_actions or len(ids)
    probability = pmf[ids.index(chosen_id)]
    body = {
        "_label_cost": cost,
        "_label_probability": probability,
        "_label_Action": chosen_id,
        "_labelIndex": chosen_id - 1,
        "Timestamp": f"2026-01-01T00:00:0{len(event_id) % 10}Z",
        "Version": "1",
        "EventId": event_id,
        "a": ids,
        "c": {
            "User": {"segment": "gold"},
            "_multi": [{"Offer": {"id": f"offer{k}"}} for k in range(1, n_actions + 1)],
        },
        "p": pmf,
        "VWState": {"m": "model/1"},
    }
    body.update(extra)
    return json.dumps(body)


LINES = [
    record("e1", 4, [4, 2, 1, 3], [0.05, 0.05, 0.05, 0.85], -0.0),
    record("e2", 1, [1, 3, 2], [0.8, 0.1, 0.1], -1.0),
    "",
    record("e3", 2, [2, 1], [0.5, 0.5], -2.5, _skipLearn=True),
    json.dumps({"EventId": "e4", "a": [1], "p": [1.0], "c": {"_multi": [{}]}}),  # no label
    record("e5", 3, [1, 2, 3, 4, 5], [0.6, 0.1, 0.1, 0.1, 0.1], -0.5),
]


@pytest.fixture
def dsjson_file(tmp_path):
    path = tmp_path / "log.dsjson"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def test_load_dsjson_reads_labels_pmfs_and_skips(dsjson_file):
    log = load_dsjson(dsjson_file)
    np.testing.assert_array_equal(log.feedback.action, [3, 0, 2])
    np.testing.assert_allclose(log.feedback.reward, [0.0, 1.0, 0.5])
    np.testing.assert_allclose(log.feedback.pscore, [0.05, 0.8, 0.1])
    np.testing.assert_array_equal(log.candidate_counts, [4, 3, 5])
    assert log.event_ids == ("e1", "e2", "e5")
    assert log.skipped_learn == 1 and log.skipped_unlabelled == 1
    # pmfs are re-ordered from `a` order into action-id (_multi) order
    np.testing.assert_allclose(log.logging_pmf.values[:4], [0.05, 0.05, 0.85, 0.05])  # ids 1..4
    np.testing.assert_allclose(log.logging_pmf.values[4:7], [0.8, 0.1, 0.1])
    np.testing.assert_array_equal(log.logging_pmf.indptr, log.indptr)


def test_loaded_log_evaluates_through_the_ragged_path(dsjson_file):
    log = load_dsjson(dsjson_file)
    # Target: always the first candidate (action id 1).
    target = RaggedMatrix(log.indptr, np.concatenate([np.eye(k)[0] for k in log.candidate_counts]))
    result = evaluate(log.feedback, target, estimators=["ipw", "snipw"], n_bootstrap=0,
                      logging_pmf=log.logging_pmf)
    # Only e2 chose action 1: w = 1 / 0.8, reward 1.
    assert result["ipw"].value == pytest.approx((1.0 / 0.8) / 3)
    assert result["snipw"].value == pytest.approx(1.0)
    # The target puts mass 1 on arms the logger played with positive probability: no deficiency.
    assert result.diagnostics.support_deficiency == 0.0


def test_iter_dsjson_keeps_features_only_when_asked():
    decisions = list(iter_dsjson(LINES[:2], keep_features=True))
    assert decisions[0].context["User"] == {"segment": "gold"}
    assert decisions[0].action_features[3]["Offer"]["id"] == "offer4"
    assert decisions[0].chosen_index == 3 and decisions[0].line_number == 1
    plain = next(iter_dsjson(LINES[:1]))
    assert plain.action_features == () and dict(plain.context) == {}


def test_label_action_alone_is_one_based():
    body = json.loads(LINES[1])
    del body["_labelIndex"]
    (decision,) = iter_dsjson([json.dumps(body)])
    assert decision.chosen_index == 0


def test_zero_based_action_ids_are_accepted():
    body = json.loads(LINES[0])
    body["a"] = [i - 1 for i in body["a"]]
    (decision,) = iter_dsjson([json.dumps(body)])
    np.testing.assert_allclose(decision.logging_pmf, [0.05, 0.05, 0.85, 0.05])
    assert decision.probability == pytest.approx(decision.logging_pmf[decision.chosen_index])


def test_records_without_pmf_give_no_logging_pmf(tmp_path):
    body = json.loads(LINES[1])
    del body["a"], body["p"]
    path = tmp_path / "nopmf.dsjson"
    path.write_text(LINES[0] + "\n" + json.dumps(body) + "\n")
    log = load_dsjson(path)
    assert log.logging_pmf is None
    np.testing.assert_array_equal(log.candidate_counts, [4, 3])


def altered(change):
    body = json.loads(LINES[0])
    change(body)
    return json.dumps(body)


BAD_LINES = [
    ("{not json", "dsjson", r"line 1: not valid JSON"),
    ("[1, 2]", "dsjson", r"line 1: expected a JSON object"),
    (altered(lambda b: b.pop("_labelIndex") and b.pop("_label_Action")), "_labelIndex", r"needs `_labelIndex`"),
    (altered(lambda b: b.update(_labelIndex=7)), "_labelIndex", r"chosen action index 7 outside the 4"),
    (altered(lambda b: b.update(_labelIndex="3")), "_labelIndex", r"_labelIndex must be an integer"),
    (altered(lambda b: b.update(_label_probability=0.0)), "_label_probability", r"must be a finite number in \(0, 1\]"),
    (altered(lambda b: b.update(_label_probability=0.5)), "_label_probability", r"`p` gives the chosen action probability 0\.05"),
    (altered(lambda b: b.update(_label_cost="free")), "_label_cost", r"_label_cost must be a finite number"),
    (altered(lambda b: b.update(_label_cost=float("nan"))), "_label_cost", r"_label_cost must be a finite number"),
    (altered(lambda b: b.update(a=[4, 2, 2, 3])), "a", r"`a` must list each action id 1\.\.4 once"),
    (altered(lambda b: b.update(p=[0.05, 0.05, 0.85])), "p", r"`a` and `p` must be lists of equal length"),
    (altered(lambda b: b.update(p=[0.05, 0.05, 0.05, 0.5])), "p", r"`p` must be a probability distribution"),
    (altered(lambda b: (b["c"].pop("_multi"), b.pop("a"))), "dsjson", r"no actions"),
]


@pytest.mark.parametrize("line,field,pattern", BAD_LINES)
def test_bad_records_are_rejected_with_line_and_field(line, field, pattern):
    with pytest.raises(InvalidInput, match=pattern) as info:
        list(iter_dsjson([line]))
    assert info.value.field == field


def test_file_without_labelled_records_is_rejected(tmp_path):
    path = tmp_path / "empty.dsjson"
    path.write_text(LINES[3] + "\n")
    with pytest.raises(InvalidInput, match="no labelled decision records"):
        load_dsjson(path)
