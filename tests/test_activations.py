import math

import numpy as np
import pytest

from dltrain.engine.activations import ACTIVATIONS, exp, leaky_relu, sigmoid, softmax
from dltrain.engine.gradcheck import gradient_check


def test_known_values():
    Z = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(sigmoid(Z), [[0.11920292202211755, 0.5, 0.9525741268224334]])
    np.testing.assert_allclose(ACTIVATIONS["tanh"].forward(Z), np.tanh(Z))
    np.testing.assert_array_equal(ACTIVATIONS["relu"].forward(Z), [[0.0, 0.0, 3.0]])
    np.testing.assert_allclose(leaky_relu(0.1).forward(Z), [[-0.2, 0.0, 3.0]])
    np.testing.assert_allclose(softmax(np.array([[1.0], [2.0], [3.0]])).ravel(), [0.09003057, 0.24472847, 0.66524096])


def test_exp_is_the_c_librarys_bit_for_bit(rng):
    # NumPy's float64 exp rounds differently on AVX-512 CPUs (in about 5% of these values), and the
    # planar course run then misses the course's printed cost.
    X = rng.standard_normal((40, 500)) * 20  # above EXP_CHUNK values: in chunks of columns
    expected = [[math.exp(x) for x in row] for row in X.tolist()]
    assert exp(X).tolist() == expected
    assert exp(X[:, :7]).tolist() == [row[:7] for row in expected]  # one pass
    F = np.asfortranarray(X)
    assert exp(F).flags.f_contiguous and exp(F).tolist() == expected  # NumPy's layout, as np.exp keeps it
    assert exp(X.astype(np.float32) / 20).dtype == np.float32
    exp(X, out=X)  # in place, as sigmoid calls it
    assert X.tolist() == expected


def test_no_overflow_at_extremes():
    Z = np.array([[-1000.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(sigmoid(Z), [[0.0, 1.0]])
        A = softmax(np.array([[1000.0, -1000.0], [0.0, 0.0]]))
    np.testing.assert_allclose(A.sum(axis=0), [1.0, 1.0])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_backward_matches_numeric_gradient(name, rng):
    act = ACTIVATIONS[name]
    # keep inputs away from the ReLU kink, where the numeric derivative is not defined
    Z = rng.standard_normal((4, 5))
    Z[np.abs(Z) < 0.05] += 0.1
    dA = rng.standard_normal((4, 5))

    def cost():
        return float(np.sum(act.forward(Z) * dA))

    report = gradient_check(cost, {"Z": Z}, {"Z": act.backward(dA, act.forward(Z))})
    assert report.overall < 1e-7
