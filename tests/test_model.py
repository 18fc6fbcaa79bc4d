import itertools

import numpy as np
import pytest

from dltrain.engine.activations import ACTIVATIONS, leaky_relu
from dltrain.engine.gradcheck import gradient_check, verdict
from dltrain.engine.initializers import INITIALIZERS
from dltrain.engine.losses import LOSSES
from dltrain.engine.model import (
    LayerSpec,
    Network,
    backward,
    compute_cost,
    forward,
    init_params,
    labels_from_output,
    update_running_stats,
)


def make_net(sizes, hidden="tanh", output="sigmoid", batch_norm=False, l2=0.0, l1=0.0, keep_prob=1.0):
    act = leaky_relu(0.05) if hidden == "leaky_relu" else ACTIVATIONS[hidden]
    specs = [LayerSpec(n, act, batch_norm, keep_prob) for n in sizes[1:-1]]
    specs.append(LayerSpec(sizes[-1], ACTIVATIONS[output]))
    return Network(sizes[0], tuple(specs), LOSSES[output], l2=l2, l1=l1)


def data(rng, n_x, n_out, m):
    X = rng.standard_normal((n_x, m))
    if n_out == 1:
        Y = (rng.random((1, m)) < 0.5).astype(float)
    else:
        Y = np.eye(n_out)[:, rng.integers(0, n_out, m)]
    return X, Y


def model_gradcheck(net, X, Y, params, state, dropout_seed=None):
    m = X.shape[1]

    def run():
        rs = np.random.RandomState(dropout_seed) if dropout_seed is not None else None
        return forward(X, params, net, state, training=True, dropout_rng=rs)

    def cost():
        AL, cache = run()
        data_cost, pen = compute_cost(AL, cache, Y, params, net, m)
        return data_cost + pen

    AL, cache = run()
    return gradient_check(cost, params, backward(AL, Y, cache, params, net, m))


COMBOS = list(itertools.product(["relu", "leaky_relu", "tanh", "sigmoid"], [False, True], ["sigmoid", "softmax"]))


@pytest.mark.parametrize("hidden,batch_norm,output", COMBOS)
def test_whole_model_gradients(hidden, batch_norm, output):
    rng = np.random.default_rng(1)
    n_out = 1 if output == "sigmoid" else 3
    net = make_net([4, 5, 3, n_out], hidden, output, batch_norm, l2=0.3, l1=0.1)
    params, state = init_params(net, INITIALIZERS["xavier"], rng, 1.0)
    for k in params:  # move gamma/beta/b off their initial values so every term matters
        params[k] += 0.1 * rng.standard_normal(params[k].shape)
    X, Y = data(rng, 4, n_out, 7)
    report = model_gradcheck(net, X, Y, params, state)
    assert {a.name for a in report.arrays} == set(params)
    assert report.overall < 2e-7, report


def test_whole_model_gradients_with_fixed_dropout_masks():
    rng = np.random.default_rng(2)
    net = make_net([3, 6, 4, 1], "tanh", keep_prob=0.7)
    params, state = init_params(net, INITIALIZERS["xavier"], rng, 1.0)
    X, Y = data(rng, 3, 1, 9)
    # re-seeding the mask generator for every forward pass makes the cost a fixed function
    assert model_gradcheck(net, X, Y, params, state, dropout_seed=5).overall < 2e-7


def test_fused_output_delta_equals_chain_rule():
    rng = np.random.default_rng(3)
    for output, n_out in (("sigmoid", 1), ("softmax", 4)):
        X, Y = data(rng, 3, n_out, 6)
        ZL = rng.standard_normal((n_out, 6))
        act = ACTIVATIONS[output]
        AL = act.forward(ZL)
        if output == "sigmoid":
            dAL = -(Y / AL - (1 - Y) / (1 - AL))
        else:
            dAL = -Y / AL
        np.testing.assert_allclose(act.backward(dAL, AL), AL - Y, atol=1e-12)


def test_course_gradient_check_nd_example():
    """Course 2 week 1 'Gradient Checking': 4-5-3-1 relu/relu/sigmoid, np.random.seed(1) draws."""
    rs = np.random.RandomState(1)
    x = rs.randn(4, 3)
    y = np.array([[1.0, 1.0, 0.0]])
    params = {"W1": rs.randn(5, 4), "b1": rs.randn(5, 1), "W2": rs.randn(3, 5), "b2": rs.randn(3, 1),
              "W3": rs.randn(1, 3), "b3": rs.randn(1, 1)}
    net = make_net([4, 5, 3, 1], "relu")
    AL, cache = forward(x, params, net)
    grads = backward(AL, y, cache, params, net, 3)

    def course_cost():  # the notebook's cost: log of the probabilities, not of the logits
        AL = forward(x, params, net)[0]
        return 1.0 / 3 * np.sum(-np.log(AL) * y - np.log(1 - AL) * (1 - y))

    # same backward, same checker, the course's cost: the course's printed 1.1890913024229996e-07
    assert abs(gradient_check(course_cost, params, grads).overall / 1.1890913024229996e-07 - 1) < 1e-6
    # the engine's cost from logits loses less precision to the 1 - AL cancellation: a tighter check
    engine = model_gradcheck(net, x, y, params, {})
    assert engine.overall < 1e-8 and verdict(engine.overall, 2e-7) == "pass"

    # the course's deliberately broken backward: dW2 doubled and db1 computed with 4/m
    grads["W2"] = 2 * grads["W2"]
    grads["b1"] = 4 * grads["b1"]

    def cost():
        AL, cache = forward(x, params, net)
        return compute_cost(AL, cache, y, params, net, 3)[0]

    broken = gradient_check(cost, params, grads)
    assert broken.overall > 1e-2 and verdict(broken.overall, 2e-7) == "fail"
    assert broken.worst.name in {"W2", "b1"}


def test_shapes_and_prediction():
    rng = np.random.default_rng(4)
    net = make_net([12, 7, 5, 6], "relu", "softmax", batch_norm=True)
    params, state = init_params(net, INITIALIZERS["he"], rng, 1.0)
    assert params["W1"].shape == (7, 12) and params["W3"].shape == (6, 5) and params["b3"].shape == (6, 1)
    assert "b1" not in params and params["gamma1"].shape == (7, 1) and state["mean2"].shape == (5, 1)
    X, Y = data(rng, 12, 6, 10)
    AL, cache = forward(X, params, net, state)
    assert AL.shape == (6, 10)
    grads = backward(AL, Y, cache, params, net, 10)
    assert set(grads) == set(params)
    assert all(grads[k].shape == params[k].shape for k in params)
    assert labels_from_output(AL).shape == (10,)
    assert labels_from_output(np.array([[0.2, 0.7, 0.5]])).tolist() == [0, 1, 0]


def test_same_seed_same_weights_and_course_stream():
    net = make_net([5, 4, 3, 1])
    a, _ = init_params(net, INITIALIZERS["he"], np.random.default_rng(7), 1.0)
    b, _ = init_params(net, INITIALIZERS["he"], np.random.default_rng(7), 1.0)
    c, _ = init_params(net, INITIALIZERS["he"], np.random.default_rng(8), 1.0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], c["W1"])
    # course mode: the notebook's np.random.seed(3); randn(n_l, n_prev) * sqrt(2 / n_prev) per layer
    course, _ = init_params(net, INITIALIZERS["he"], np.random.RandomState(3), 1.0)
    rs = np.random.RandomState(3)
    for l, (n, n_prev) in enumerate([(4, 5), (3, 4), (1, 3)], start=1):
        np.testing.assert_array_equal(course[f"W{l}"], rs.randn(n, n_prev) * np.sqrt(2 / n_prev))
        np.testing.assert_array_equal(course[f"b{l}"], np.zeros((n, 1)))


def test_backward_into_an_earlier_steps_gradients_gives_the_same_bits():
    """The training loop reuses its previous step's weight gradients as the output arrays."""
    rng = np.random.default_rng(5)
    net = make_net([6, 5, 4, 3], "relu", "softmax", l2=0.7, l1=0.2)
    params, state = init_params(net, INITIALIZERS["he"], rng, 1.0)
    X, Y = data(rng, 6, 3, 8)
    AL, cache = forward(X, params, net, state)
    stale = {k: np.full_like(v, np.nan) for k, v in backward(AL, Y, cache, params, net, 20).items()}
    arrays = {k: stale[k] for k in net.weight_keys}
    grads = backward(AL, Y, cache, params, net, 20, out=stale)
    fresh = backward(AL, Y, cache, params, net, 20)
    assert all(grads[k] is arrays[k] for k in net.weight_keys)  # written in place, nothing allocated
    assert set(grads) == set(fresh) and all(np.array_equal(grads[k], fresh[k]) for k in fresh)


def test_running_variance_averages_the_biased_batch_variance():
    # Documented (docs/training.md, update_running_stats): the course's biased variance, not
    # PyTorch's unbiased one (m / (m - 1) larger).
    rng = np.random.default_rng(7)
    net = make_net([3, 4, 1], "relu", "sigmoid", batch_norm=True)._replace(bn_momentum=0.5)
    params, state = init_params(net, INITIALIZERS["he"], rng, 1.0)
    X = rng.standard_normal((3, 8))
    _, cache = forward(X, params, net, state, training=True)
    update_running_stats(state, cache, net.bn_momentum)
    Z1 = params["W1"] @ X
    assert np.allclose(state["var1"], 0.5 * 1.0 + 0.5 * Z1.var(axis=1, ddof=0, keepdims=True), rtol=1e-14)
    assert not np.allclose(state["var1"], 0.5 * 1.0 + 0.5 * Z1.var(axis=1, ddof=1, keepdims=True), rtol=1e-3)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_wide_layers_product_way_changes_no_bit_of_a_step(batch_norm, monkeypatch):
    """engine/products.py may compute a wide layer's Z either way round: the whole step's cost and gradients,
    through batch norm's reductions and a 12-class softmax, are the same bits."""
    from dltrain.engine import products

    rng = np.random.default_rng(9)
    net = make_net([1500, 16, 12], "relu", "softmax", batch_norm=batch_norm)
    params, state = init_params(net, INITIALIZERS["he"], rng, 1.0)
    X, Y = data(rng, 1500, 12, 40)
    X = np.asfortranarray(X)  # examples contiguous, as dltrain train stores them
    results = []
    for way in (True, False):
        monkeypatch.setattr(products, "_transposed", {((16, 1500), X.shape, X.strides, X.dtype): way})
        AL, cache = forward(X, params, net, state)
        grads = backward(AL, Y, cache, params, net, 40)
        results.append((net.loss(cache.ZL, AL, Y), AL.tobytes(), {k: g.tobytes() for k, g in grads.items()}))
    assert results[0] == results[1]
