import numpy as np
import pytest

from dltrain.data.generated import planar_flower
from dltrain.data.prepare import apply_normalization, normalization_stats, stratified_split, targets
from tests.conftest import COURSE_DATA, needs_course_data


def test_planar_first_column_matches_course():
    X, y = planar_flower(1)
    assert X.shape == (2, 400) and y.shape == (400,)
    np.testing.assert_allclose(X[:, 0], [1.20444229, 3.57611415], rtol=1e-8)
    assert (y[:200] == 0).all() and (y[200:] == 1).all()


def test_stratified_split_keeps_class_ratio():
    y = np.array([0] * 80 + [1] * 20)
    keep, dev = stratified_split(y, 0.25, np.random.default_rng(0))
    assert len(dev) == 25 and (y[dev] == 1).sum() == 5
    assert sorted(np.concatenate([keep, dev]).tolist()) == list(range(100))


def test_standardize_uses_train_statistics():
    X = np.array([[1.0, 3.0], [5.0, 5.0]])
    stats = normalization_stats(X, "standardize")
    np.testing.assert_allclose(apply_normalization(X, stats), [[-1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(apply_normalization(np.array([[2.5], [5.0]]), stats), [[0.5], [0.0]])


def test_targets():
    np.testing.assert_array_equal(targets(np.array([1, 0]), 1), [[1.0, 0.0]])
    np.testing.assert_array_equal(targets(np.array([2, 0]), 3), [[0, 1], [0, 0], [1, 0]])


@needs_course_data
def test_real_cat_files_load():
    from types import SimpleNamespace

    from dltrain.data import load_dataset

    ds = load_dataset(SimpleNamespace(dataset="cat", dir=str(COURSE_DATA)))
    assert ds.X_train.shape == (12288, 209) and ds.X_test.shape == (12288, 50)
    assert ds.classes == ["non-cat", "cat"] and int(ds.y_train.sum()) == 72


def test_missing_and_corrupt_h5(tmp_path):
    from types import SimpleNamespace

    from dltrain.data import load_dataset
    from dltrain.errors import DltrainError

    with pytest.raises(DltrainError, match="train_catvnoncat.h5 not found"):
        load_dataset(SimpleNamespace(dataset="cat", dir=str(tmp_path)))
    (tmp_path / "train_catvnoncat.h5").write_bytes(b"not an h5 file at all")
    with pytest.raises(DltrainError, match="not a readable HDF5 file"):
        load_dataset(SimpleNamespace(dataset="cat", dir=str(tmp_path)))
