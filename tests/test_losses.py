import decimal

import numpy as np
import pytest

from dltrain.engine.activations import sigmoid, softmax
from dltrain.engine.losses import binary_cross_entropy, categorical_cross_entropy, l1_penalty, l2_penalty


def test_binary_cross_entropy_known_value():
    Z = np.array([[0.0, 2.0, -1.0]])
    Y = np.array([[1.0, 0.0, 0.0]])
    A = sigmoid(Z)
    expected = -(np.log(0.5) + np.log(1 - A[0, 1]) + np.log(1 - A[0, 2]))
    assert np.isclose(binary_cross_entropy(Z, A, Y), expected)


def test_categorical_cross_entropy_known_value():
    Z = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 5.0]])
    Y = np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    A = softmax(Z)
    assert np.isclose(categorical_cross_entropy(Z, A, Y), -np.log(A[2, 0]) - np.log(A[0, 1]))


def test_costs_finite_for_saturated_outputs():
    Z = np.array([[800.0, -800.0]])
    Y = np.array([[0.0, 1.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        cost = binary_cross_entropy(Z, sigmoid(Z), Y)
    assert np.isclose(cost, 1600.0)
    Z3 = np.array([[900.0], [0.0], [-900.0]])
    assert np.isclose(categorical_cross_entropy(Z3, softmax(Z3), np.array([[0.0], [0.0], [1.0]])), 1800.0)


def test_penalties():
    params = {"W1": np.array([[1.0, -2.0]]), "W2": np.array([[3.0]]), "b1": np.array([[100.0]])}
    assert np.isclose(l2_penalty(params, ["W1", "W2"], 0.7, 10), 0.7 / 20 * 14)
    assert np.isclose(l1_penalty(params, ["W1", "W2"], 0.5, 10), 0.5 / 10 * 6)


# ---- precision against exact values -------------------------------------------------------------


def _exact_log_sum_exp_minus(z: list[float], c: int) -> float:
    """-log softmax(z)_c = log(sum_k e^z_k) - z_c, to 150 digits (Python's decimal), as a float."""
    with decimal.localcontext(prec=150):
        D = [decimal.Decimal(float(v)) for v in z]
        return float(sum(d.exp() for d in D).ln() - D[c])


Z_BINARY = [-100.0, -37.0, -10.0, -1.5, -1e-3, 0.0, 1e-3, 1.5, 10.0, 17.0, 37.0, 100.0]


@pytest.mark.parametrize("dtype,ulps", [(np.float64, 4), (np.float32, 4)])
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_binary_cross_entropy_keeps_relative_precision(dtype, ulps, y):
    # y = 1, z = 37: the loss is e^-37 = 8.5e-17, which log(1 + e^z) - y z rounded to 0; in float32
    # it was 0.8% off at z = 10.
    for z in Z_BINARY:
        Z = np.array([[z]], dtype=dtype)
        got = binary_cross_entropy(Z, sigmoid(Z), np.array([[y]], dtype=dtype))
        # -log a = log(1 + e^-z), -log(1 - a) = log(1 + e^z), from the dtype's value of z
        exact = _exact_log_sum_exp_minus([0.0, float(Z[0, 0])], 1 if y == 1.0 else 0)
        assert got > 0
        assert abs(got - exact) <= ulps * np.finfo(dtype).eps * exact, (z, y, got, exact)


@pytest.mark.parametrize("dtype,ulps", [(np.float64, 6), (np.float32, 6)])
def test_categorical_cross_entropy_keeps_relative_precision(dtype, ulps):
    columns = [[40.0, 0.0, -3.0], [20.0, 1.0, 1.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1e-3, 0.0, -1e-3],
               [-30.0, 2.0, 0.0], [3.0, 3.0, -50.0], [100.0, -100.0, 99.0]]
    for z in columns:
        for c in range(3):
            Z = np.array(z, dtype=dtype).reshape(3, 1)
            Y = np.zeros((3, 1), dtype=dtype)
            Y[c] = 1.0
            got = categorical_cross_entropy(Z, softmax(Z), Y)
            exact = _exact_log_sum_exp_minus([float(v) for v in Z[:, 0]], c)
            assert got > 0
            assert abs(got - exact) <= ulps * np.finfo(dtype).eps * exact, (z, c, got, exact)


def test_losses_sum_over_examples():
    Z = np.array([[37.0, -2.0, 0.5]])
    Y = np.array([[1.0, 0.0, 1.0]])
    each = [binary_cross_entropy(Z[:, i:i + 1], None, Y[:, i:i + 1]) for i in range(3)]
    assert binary_cross_entropy(Z, sigmoid(Z), Y) == pytest.approx(sum(each), rel=1e-15)
    Z3 = np.array([[30.0, 0.0], [0.0, 1.0], [-1.0, 2.0]])
    Y3 = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    each = [categorical_cross_entropy(Z3[:, i:i + 1], None, Y3[:, i:i + 1]) for i in range(2)]
    assert categorical_cross_entropy(Z3, softmax(Z3), Y3) == pytest.approx(sum(each), rel=1e-15)
