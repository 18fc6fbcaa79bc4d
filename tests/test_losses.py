import numpy as np

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
