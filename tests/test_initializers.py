import numpy as np
import pytest

from dltrain.engine.initializers import INITIALIZERS


@pytest.mark.parametrize(
    "name,expected_std",
    [("random", 0.01), ("he", np.sqrt(2 / 400)), ("xavier", np.sqrt(1 / 400)), ("glorot", np.sqrt(2 / 600))],
)
def test_scales(name, expected_std):
    default_scale = 0.01 if name == "random" else 1.0
    W = INITIALIZERS[name](200, 400, np.random.default_rng(0), default_scale)
    assert W.shape == (200, 400)
    assert abs(W.std() / expected_std - 1) < 0.02
    W3 = INITIALIZERS[name](200, 400, np.random.default_rng(0), 3 * default_scale)
    np.testing.assert_allclose(W3, 3 * W)


def test_zeros_and_course_xavier_expression():
    assert not INITIALIZERS["zeros"](3, 4, None).any()
    W = INITIALIZERS["xavier"](20, 12288, np.random.RandomState(1))
    np.testing.assert_array_equal(W, np.random.RandomState(1).randn(20, 12288) / np.sqrt(12288))
