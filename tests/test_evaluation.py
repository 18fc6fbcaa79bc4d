"""Classification metrics against scikit-learn, and the course's bias/variance worked examples."""

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support

from dltrain.evaluation import GAP_THRESHOLD, RECIPES, classification_report, confusion_matrix, diagnose


def test_confusion_and_per_class_match_sklearn(rng):
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    y_pred[:3] = 3  # class 3 predicted at least once; class 2 below may have no predictions at all
    y_pred[y_pred == 2] = 1
    classes = ["a", "b", "c", "d"]
    assert confusion_matrix(y_true, y_pred, 4).tolist() == sk_confusion(y_true, y_pred, labels=range(4)).tolist()
    report = classification_report(y_true, y_pred, classes, binary=False)
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=0)
    for c, name in enumerate(classes):
        got = report["per_class"][name]
        assert got["precision"] == pytest.approx(p[c]) and got["recall"] == pytest.approx(r[c])
        assert got["f1"] == pytest.approx(f[c]) and got["support"] == support[c]
    assert report["per_class"]["c"]["precision"] == 0.0


def test_binary_report_is_about_class_1(rng):
    y_true, y_pred = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    report = classification_report(y_true, y_pred, ["non-cat", "cat"], binary=True)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary")
    assert report["positive_class"] == "cat"
    assert (report["precision"], report["recall"], report["f1"]) == pytest.approx((p, r, f))
    assert "per_class" not in report


def test_hand_counted_binary_case():
    # 3 true positives, 1 false positive, 2 false negatives, 4 true negatives.
    y_true = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    report = classification_report(y_true, y_pred, ["0", "1"], binary=True)
    assert report["confusion_matrix"] == [[4, 1], [2, 3]]
    assert (report["precision"], report["recall"]) == (0.75, 0.6)
    assert report["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)


@pytest.mark.parametrize(
    "train,dev,problem",
    [(0.01, 0.11, "high variance"), (0.15, 0.16, "high bias"), (0.15, 0.30, "both"), (0.005, 0.01, "neither")],
)
def test_course_worked_examples(train, dev, problem):
    d = diagnose(train, dev, human_error=0.0)
    assert d["problem"] == problem
    assert d["avoidable_bias"] == pytest.approx(train) and d["variance"] == pytest.approx(dev - train)


def test_recipe_follows_the_problem():
    assert diagnose(0.15, 0.16)["recipe"] == RECIPES["bias"]
    assert diagnose(0.01, 0.11)["recipe"] == RECIPES["variance"]
    both = diagnose(0.15, 0.30)["recipe"]
    assert both[:3] == RECIPES["bias"] and set(both) == set(RECIPES["bias"] + RECIPES["variance"])  # bias first
    assert len(both) == len(set(both)) == 5
    assert diagnose(0.005, 0.01)["recipe"] == []


def test_human_error_moves_the_bias():
    # The course's human-level example: human 7.5%, train 8%, dev 10% -> variance, not bias.
    d = diagnose(0.08, 0.10, human_error=0.075)
    assert d["problem"] == "high variance" and d["avoidable_bias"] == pytest.approx(0.005)
    assert diagnose(0.08, 0.10, human_error=0.0)["problem"] == "both"


def test_threshold_edges_and_missing_dev():
    assert diagnose(GAP_THRESHOLD, GAP_THRESHOLD)["problem"] == "high bias"
    assert diagnose(0.0, GAP_THRESHOLD * 0.99)["problem"] == "neither"
    d = diagnose(0.01, None)
    assert d["problem"] == "variance unknown" and d["variance"] is None and d["dev_split"] is None
    assert diagnose(0.2, None)["problem"] == "high bias"
    assert diagnose(0.01, 0.2, dev_split="test")["dev_split"] == "test"
