import numpy as np
import pytest

from dltrain.engine.gradcheck import gradient_check
from dltrain.engine.layers import (
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_inference,
    dense_backward,
    dense_forward,
    dropout_backward,
    dropout_forward,
)


def test_dense_shapes_and_gradients(rng):
    A_prev, W, b = rng.standard_normal((4, 6)), rng.standard_normal((3, 4)), rng.standard_normal((3, 1))
    dZ = rng.standard_normal((3, 6))
    Z, cache = dense_forward(A_prev, W, b)
    assert Z.shape == (3, 6)
    dA_prev, dW, db = dense_backward(dZ, cache)
    assert (dA_prev.shape, dW.shape, db.shape) == ((4, 6), (3, 4), (3, 1))
    arrays = {"A_prev": A_prev, "W": W, "b": b}
    report = gradient_check(lambda: float(np.sum(dense_forward(A_prev, W, b)[0] * dZ)), arrays,
                            {"A_prev": dA_prev, "W": dW, "b": db})
    assert report.overall < 1e-7
    assert dense_backward(dZ, cache, need_dA_prev=False)[0] is None


def test_batchnorm_gradients_through_batch_statistics(rng):
    Z, gamma, beta = rng.standard_normal((3, 8)) * 2 + 1, rng.standard_normal((3, 1)), rng.standard_normal((3, 1))
    dOut = rng.standard_normal((3, 8))
    out, cache, (mu, var) = batchnorm_forward(Z, gamma, beta, 1e-5)
    np.testing.assert_allclose(((out - beta) / gamma).mean(axis=1), 0, atol=1e-12)
    dZ, dgamma, dbeta = batchnorm_backward(dOut, cache)
    report = gradient_check(
        lambda: float(np.sum(batchnorm_forward(Z, gamma, beta, 1e-5)[0] * dOut)),
        {"Z": Z, "gamma": gamma, "beta": beta},
        {"Z": dZ, "gamma": dgamma, "beta": dbeta},
    )
    assert report.overall < 1e-7, report
    # with the batch's own statistics as running statistics, inference equals training mode
    np.testing.assert_allclose(batchnorm_inference(Z, gamma, beta, mu, var, 1e-5), out)


def test_dropout_fixed_mask_gradient_and_scaling(rng):
    A = rng.standard_normal((5, 7))
    mask = rng.random((5, 7)) < 0.8
    dOut = rng.standard_normal((5, 7))
    out, cache = dropout_forward(A, mask, 0.8)
    np.testing.assert_allclose(out, np.where(mask, A / 0.8, 0.0))
    report = gradient_check(lambda: float(np.sum(dropout_forward(A, mask, 0.8)[0] * dOut)), {"A": A},
                            {"A": dropout_backward(dOut, cache)})
    assert report.overall < 1e-7


def test_dense_forward_on_a_wide_input_equals_the_course_product(rng):
    """Wide inputs take the transposed GEMM (faster in BLAS); it is the same Z = W A_prev + b."""
    A_prev, W, b = rng.standard_normal((1500, 7)), rng.standard_normal((3, 1500)), rng.standard_normal((3, 1))
    Z, cache = dense_forward(A_prev, W, b)
    np.testing.assert_allclose(Z, W @ A_prev + b, rtol=1e-12, atol=1e-12)
    assert Z.shape == (3, 7) and cache.A_prev is A_prev



def clock(d_default, d_other):
    """A fake clock under which each product takes d_default (the default way) or d_other (the other way)."""
    from dltrain.engine import products

    t, seq = 0.0, []
    for _ in range(products.ROUNDS):  # calibrate times the default way first in each round
        seq += [t, t + d_default, t + d_default, t + d_default + d_other]
        t += d_default + d_other
    return iter(seq).__next__


def test_a_wide_layers_product_is_timed_both_ways_and_the_clearly_faster_is_kept(rng, monkeypatch):
    """engine/products.py: the first wide product of a shape is computed both ways; the faster is kept."""
    from dltrain.engine import products

    A_prev, W = rng.standard_normal((1500, 7)), rng.standard_normal((3, 1500))
    assert products.calibrate(W, A_prev, clock(1.0, 0.5)) is (not products.DEFAULT)
    assert products.calibrate(W, A_prev, clock(1.0, 0.97)) is products.DEFAULT  # within the margin: load noise
    assert products.calibrate(W, A_prev, clock(1.0, 2.0)) is products.DEFAULT
    # the other way is faster but gives other bits: never chosen
    monkeypatch.setattr(products, "_transpose", lambda W, A: (A.T @ W.T).T * (1 + 1e-15))
    assert products.calibrate(W, A_prev, clock(1.0, 0.1)) is products.DEFAULT


def test_a_wide_layers_product_has_the_same_bits_whichever_way_and_is_timed_once(rng, monkeypatch):
    from dltrain.engine import products

    monkeypatch.setattr(products, "_transposed", {})
    calls = []
    monkeypatch.setattr(products, "calibrate", lambda W, A: calls.append(1) or products.DEFAULT)
    A_prev, W = rng.standard_normal((1500, 7)), rng.standard_normal((3, 1500))
    Z = products.forward(W, A_prev)
    products.forward(W, A_prev)
    key = (W.shape, A_prev.shape, A_prev.strides, W.dtype)
    assert calls == [1] and products.choices() == {key: products.DEFAULT}
    for way in (True, False):  # the same bits and the same layout (reductions over Z depend on it)
        monkeypatch.setattr(products, "_transposed", {key: way})
        again = products.forward(W, A_prev)
        assert np.array_equal(again, Z) and again.flags.f_contiguous and again.strides == Z.strides
    products.forward(rng.standard_normal((3, 20)), A_prev[:20])  # narrow: W @ A_prev, never timed
    assert calls == [1]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_one_unit_layers_input_gradient_has_the_gemms_bits(dtype, rng):
    """input_gradient multiplies instead of calling the GEMM for a one-unit layer: the same bits."""
    from dltrain.engine.layers import input_gradient

    for n_prev, m in ((4, 400), (5, 209), (512, 256), (1, 1)):
        W = (rng.standard_normal((1, n_prev)) * 1e-3).astype(dtype)
        dZ = (rng.standard_normal((1, m)) * 1e3).astype(dtype)
        dA_prev = input_gradient(W, dZ)
        gemm = W.T @ dZ
        assert dA_prev.dtype == dtype and dA_prev.strides == gemm.strides and dA_prev.tobytes() == gemm.tobytes()
    W, dZ = rng.standard_normal((3, 4)), rng.standard_normal((3, 7))
    assert np.array_equal(input_gradient(W, dZ), W.T @ dZ)
