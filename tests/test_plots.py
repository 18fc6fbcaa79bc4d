"""Every figure is a PNG that image readers open, with the size matplotlib was asked for."""

import io

import matplotlib.image as mpimg
import numpy as np
import pytest
from PIL import Image

from dltrain import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROWS = [{"epoch": e, "cost": 1.0 / (e + 1), "dev_cost": 1.2 / (e + 1), "learning_rate": 0.1 * 0.9**e,
         "norm_W1": 1.0 + e, "norm_dW1": 0.1 / (e + 1), "norm_W2": 2.0, "norm_dW2": 0.0} for e in range(0, 50, 5)]


def assert_png(figure) -> np.ndarray:
    """A figure (or PNG bytes read from a run folder) renders to a readable, non-blank PNG."""
    data = figure if isinstance(figure, bytes) else plots.png(figure)
    assert data[:8] == PNG_SIGNATURE
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    pixels = mpimg.imread(io.BytesIO(data), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0  # something was drawn
    return pixels


@pytest.mark.parametrize("marks", [None, {"best epoch": 20, "stopped": 35}])
def test_cost_curve(marks):
    assert_png(plots.cost_curve(ROWS, "cost", marks))


def test_cost_curve_without_dev_or_lr():
    assert_png(plots.cost_curve([{"epoch": 0, "cost": 0.7}, {"epoch": 1, "cost": 0.6, "dev_cost": ""}], "cost"))


def test_decision_boundary(rng):
    X = rng.normal(size=(2, 50))
    y = (X[0] > 0).astype(int)
    assert_png(plots.decision_boundary(lambda G: (G[0] > 0).astype(int), X, y, "boundary", ["left", "right"]))


def test_image_grid(rng):
    images = rng.random((7, 8, 8, 3))
    assert_png(plots.image_grid(images, [f"#{i}" for i in range(7)], "mistakes"))
    assert_png(plots.image_grid(rng.random((1, 8, 8, 1)), ["#0"], "one grey image"))


def test_confusion_heatmap():
    counts = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    assert_png(plots.confusion_heatmap(counts, ["zero", "one", "two"], "confusion"))


def test_norms_and_compare():
    assert_png(plots.norm_curves(ROWS, 2, "norms"))  # norm_dW2 == 0: drawn as x marks below the log-scale lines
    assert_png(plots.compare_costs({"a": ROWS, "b": ROWS[:4]}, "compare"))
