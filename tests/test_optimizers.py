"""One hand-computed update per optimizer (numbers worked out by hand, not by the code under test)."""

import numpy as np
import pytest

from dltrain.engine import kernels
from dltrain.engine.optimizers import GD, OPTIMIZERS, Adam, Momentum, RMSprop


def one_param(w=1.0, g=0.5):
    return {"W1": np.array([[w]])}, {"W1": np.array([[g]])}


def test_gd():
    p, g = one_param()
    GD().step(p, g, 0.1)
    assert p["W1"][0, 0] == pytest.approx(0.95)  # 1 - 0.1 * 0.5


def test_momentum_two_steps():
    opt, (p, g) = Momentum(beta=0.9), one_param()
    opt.step(p, g, 0.1)  # v = 0.1 * 0.5 = 0.05; w = 1 - 0.1 * 0.05 = 0.995
    assert (opt.v["W1"][0, 0], p["W1"][0, 0]) == pytest.approx((0.05, 0.995))
    opt.step(p, g, 0.1)  # v = 0.9 * 0.05 + 0.05 = 0.095; w = 0.995 - 0.0095 = 0.9855
    assert (opt.v["W1"][0, 0], p["W1"][0, 0]) == pytest.approx((0.095, 0.9855))


def test_rmsprop():
    opt, (p, g) = RMSprop(beta2=0.999, epsilon=1e-8), one_param()
    opt.step(p, g, 0.01)  # s = 0.001 * 0.25 = 0.00025; w = 1 - 0.01 * 0.5 / (0.0158113883 + 1e-8)
    assert opt.s["W1"][0, 0] == pytest.approx(0.00025)
    assert p["W1"][0, 0] == pytest.approx(1 - 0.01 * 0.5 / (0.015811388300841896 + 1e-8))


@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "compiled"])
def test_adam_bias_correction_t1_t2(compiled, monkeypatch):
    if compiled:  # the loop that large arrays take, in its own order of operations
        monkeypatch.setattr(kernels, "COMPILED_MIN", 1)
    opt, (p, g) = Adam(beta1=0.9, beta2=0.999, epsilon=1e-8), one_param()
    opt.step(p, g, 0.01)
    # t=1: v = 0.05, s = 0.00025; v^ = 0.05 / 0.1 = 0.5, s^ = 0.00025 / 0.001 = 0.25 -> step = 0.01 * 0.5 / 0.5
    assert opt.t == 1
    assert p["W1"][0, 0] == pytest.approx(1 - 0.01 * 0.5 / (0.5 + 1e-8))
    g2 = {"W1": np.array([[-1.0]])}
    opt.step(p, g2, 0.01)
    # t=2: v = 0.045 - 0.1 = -0.055, s = 0.00024975 + 0.001 = 0.00124975
    # v^ = -0.055 / 0.19 = -0.28947368, s^ = 0.00124975 / 0.001999 = 0.62518759
    v_hat, s_hat = -0.055 / 0.19, 0.00124975 / 0.001999
    assert (opt.v["W1"][0, 0], opt.s["W1"][0, 0]) == pytest.approx((-0.055, 0.00124975))
    assert p["W1"][0, 0] == pytest.approx(0.99 - 0.01 * v_hat / (np.sqrt(s_hat) + 1e-8))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_round_trip(name):
    opt, (p, g) = OPTIMIZERS[name](), one_param()
    opt.step(p, g, 0.1)
    clone = OPTIMIZERS[name]()
    clone.load_state_dict(opt.state_dict())
    p2 = {"W1": p["W1"].copy()}
    opt.step(p, g, 0.1)
    clone.step(p2, g, 0.1)
    assert clone.t == opt.t == 2 and np.array_equal(p["W1"], p2["W1"])


def course_updates(name, theta, grads, lr, steps):
    """The course notebooks' update formulas, written out of place as the notebooks do."""
    v = np.zeros_like(theta)
    s = np.zeros_like(theta)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t, g in enumerate(grads[:steps], start=1):
        if name == "gd":
            theta = theta - lr * g
        elif name == "momentum":
            v = beta1 * v + (1 - beta1) * g
            theta = theta - lr * v
        elif name == "rmsprop":
            s = beta2 * s + (1 - beta2) * np.power(g, 2)
            theta = theta - lr * g / (np.sqrt(s) + eps)
        else:
            v = beta1 * v + (1 - beta1) * g
            s = beta2 * s + (1 - beta2) * np.power(g, 2)
            v_corrected = v / (1 - beta1**t)
            s_corrected = s / (1 - beta2**t)
            theta = theta - lr * v_corrected / (np.sqrt(s_corrected) + eps)
    return theta


@pytest.mark.parametrize("name,opt", [("gd", GD()), ("momentum", Momentum(0.9)), ("rmsprop", RMSprop(0.999, 1e-8)),
                                      ("adam", Adam(0.9, 0.999, 1e-8))])
def test_in_place_updates_equal_the_course_formulas_bit_for_bit(name, opt, rng):
    theta0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(3)]
    params = {"W1": theta0.copy()}
    W1 = params["W1"]
    for g in grads:
        kept = g.copy()
        opt.step(params, {"W1": g}, 0.01)
        np.testing.assert_array_equal(g, kept)  # the gradient is read, never overwritten
    assert params["W1"] is W1  # updated in place: references held by the loop stay valid
    np.testing.assert_array_equal(W1, course_updates(name, theta0, grads, 0.01, 3))
    assert opt.t == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_compiled_loop_follows_the_course_formula(dtype, rng, monkeypatch):
    """Large arrays take the compiled loop, whose order of operations differs from the course's by
    rounding only; smaller ones are the course's bits (test_in_place_updates_equal_the_course_formulas_bit_for_bit)."""
    monkeypatch.setattr(kernels, "COMPILED_MIN", 1)
    steps, lr = 50, 0.01
    theta0 = rng.standard_normal((5, 4)).astype(dtype)
    grads = [rng.standard_normal((5, 4)).astype(dtype) for _ in range(steps)]
    opt, params = Adam(), {"W1": theta0.copy()}
    for g in grads:
        opt.step(params, {"W1": g}, lr)
    expected = course_updates("adam", theta0, grads, lr, steps)
    assert params["W1"].dtype == expected.dtype == dtype
    # Each step may round theta differently by an ulp of theta and a few ulps of the step (size ~lr).
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(params["W1"], expected, rtol=0, atol=steps * eps * (np.abs(expected).max() + 4 * lr))
