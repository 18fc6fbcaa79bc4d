import h5py
import numpy as np
import pytest
import sklearn.datasets

from dltrain.config import validate_data
from dltrain.data import Dataset, load_dataset
from dltrain.data.generated import make_circles, make_moons, planar_flower
from dltrain.data.prepare import (
    apply_normalization,
    carve_splits,
    normalization_stats,
    split_dataset,
    split_sizes,
    stratified_counts,
    targets,
)
from dltrain.errors import DltrainError
from tests.conftest import COURSE_DATA, needs_course_data


def test_planar_first_column_matches_course():
    X, y = planar_flower(1)
    assert X.shape == (2, 400) and y.shape == (400,)
    np.testing.assert_allclose(X[:, 0], [1.20444229, 3.57611415], rtol=1e-8)
    assert (y[:200] == 0).all() and (y[200:] == 1).all()


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
    ds = load_dataset(data_cfg(dataset="cat", dir=str(COURSE_DATA)))
    assert ds.X_train.shape == (12288, 209) and ds.X_test.shape == (12288, 50)
    assert ds.classes == ["non-cat", "cat"] and int(ds.y_train.sum()) == 72


def test_missing_and_corrupt_h5(tmp_path):
    with pytest.raises(DltrainError, match="train_catvnoncat.h5 not found"):
        load_dataset(data_cfg(dataset="cat", dir=str(tmp_path)))
    (tmp_path / "train_catvnoncat.h5").write_bytes(b"not an h5 file at all")
    with pytest.raises(DltrainError, match="not a readable HDF5 file"):
        load_dataset(data_cfg(dataset="cat", dir=str(tmp_path)))


# ---- generated datasets against scikit-learn ------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("n_samples,noise", [(300, 0.2), (101, 0.05)])
def test_moons_match_scikit_learn_bit_for_bit(seed, n_samples, noise):
    X_ref, y_ref = sklearn.datasets.make_moons(n_samples=n_samples, noise=noise, random_state=np.random.RandomState(seed))
    X, y = make_moons(n_samples, noise, seed)
    assert X.shape == (2, n_samples)
    assert np.array_equal(X, X_ref.T) and np.array_equal(y, y_ref)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("n_samples,noise,factor", [(300, 0.05, 0.8), (101, 0.2, 0.5)])
def test_circles_match_scikit_learn_bit_for_bit(seed, n_samples, noise, factor):
    X_ref, y_ref = sklearn.datasets.make_circles(
        n_samples=n_samples, noise=noise, factor=factor, random_state=np.random.RandomState(seed))
    X, y = make_circles(n_samples, noise, factor, seed)
    assert np.array_equal(X, X_ref.T) and np.array_equal(y, y_ref)


def test_moons_match_the_courses_global_seed_call():
    # The course calls np.random.seed(3); make_moons(n_samples=300, noise=.2) with no random_state.
    saved = np.random.get_state()
    try:
        np.random.seed(3)
        X_ref, y_ref = sklearn.datasets.make_moons(n_samples=300, noise=0.2)
    finally:
        np.random.set_state(saved)
    X, y = make_moons(300, 0.2, 3)
    assert np.array_equal(X, X_ref.T) and np.array_equal(y, y_ref)


# ---- splits ---------------------------------------------------------------------------------------


def test_stratified_counts_sum_exactly_and_follow_class_shares():
    np.testing.assert_array_equal(stratified_counts(np.array([80, 20]), 25), [20, 5])
    # 10 of (5, 3, 2): quotas 5, 3, 2 exactly; 5 of them: 2.5, 1.5, 1.0 -> the remainder goes to class 0.
    np.testing.assert_array_equal(stratified_counts(np.array([5, 3, 2]), 5), [3, 1, 1])
    for total in range(0, 11):
        assert stratified_counts(np.array([5, 3, 2]), total).sum() == total


def test_carve_splits_is_stratified_disjoint_and_seeded():
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    parts = carve_splits(y, {"test": 10, "dev": 20}, np.random.default_rng(5))
    assert [np.bincount(y[parts[k]]).tolist() for k in ("test", "dev", "train")] == [[6, 3, 1], [12, 6, 2], [42, 21, 7]]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(100))
    again = carve_splits(y, {"test": 10, "dev": 20}, np.random.default_rng(5))
    other = carve_splits(y, {"test": 10, "dev": 20}, np.random.default_rng(6))
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    assert not np.array_equal(parts["dev"], other["dev"])


def test_split_sizes_big_data_ratios_and_errors():
    assert split_sizes(1000, 0.01, None, 0.01) == {"test": 10, "dev": 10}  # 98/1/1
    assert split_sizes(1000, 0.0, 7, None) == {"dev": 7}
    assert split_sizes(1000, 0.0, None, None) == {}
    with pytest.raises(DltrainError, match="data.dev_fraction 0.01 of 20 training examples is 0 examples"):
        split_sizes(20, 0.01, None, None)
    with pytest.raises(DltrainError, match="leave no training examples out of 20"):
        split_sizes(20, 0.0, 15, 0.25)


def data_cfg(**keys):
    return validate_data({"data": keys})


def test_split_dataset_carves_test_only_when_the_data_has_none():
    X, y = make_moons(200, 0.2, 3)
    ds = Dataset(X, y, None, None, ["0", "1"], None)
    splits = split_dataset(ds, data_cfg(dataset="moons", dev_size=20, test_fraction=0.1), np.random.default_rng(0))
    assert {k: v.X.shape[1] for k, v in splits.items()} == {"train": 160, "dev": 20, "test": 20}
    assert list(splits) == ["train", "dev", "test"]
    # Every example lands in exactly one split, with its own label.
    together = np.concatenate([v.X for v in splits.values()], axis=1)
    assert sorted(map(tuple, together.T)) == sorted(map(tuple, X.T))
    ds_test = Dataset(X, y, X[:, :5], y[:5], ["0", "1"], None)
    with pytest.raises(DltrainError, match="already has a test part \\(5 examples\\)"):
        split_dataset(ds_test, data_cfg(dataset="file", path="f.npz", test_fraction=0.1), np.random.default_rng(0))


# ---- course files -----------------------------------------------------------------------------------


@needs_course_data
def test_real_signs_files_load():
    ds = load_dataset(data_cfg(dataset="signs", dir=str(COURSE_DATA)))
    assert ds.X_train.shape == (12288, 1071) and ds.X_test.shape == (12288, 120)
    assert ds.classes == ["0", "1", "2", "3", "4", "5"] and ds.image_shape == (64, 64, 3)
    assert np.bincount(ds.y_train).tolist() == [178, 179, 176, 179, 179, 180]
    assert np.bincount(ds.y_test).tolist() == [20] * 6
    with h5py.File(COURSE_DATA / "train_signs.h5") as f:
        # Column i is example i flattened in C order (row, column, channel), as the course's reshape(m, -1).T.
        np.testing.assert_array_equal(ds.X_train[:, 7], f["train_set_x"][7].reshape(-1))


@needs_course_data
def test_real_football_mat_loads_as_it_is():
    ds = load_dataset(data_cfg(dataset="file", path=str(COURSE_DATA / "football.mat"),
                               x_train="X", y_train="y", x_test="Xval", y_test="yval"))
    assert ds.X_train.shape == (2, 211) and ds.X_test.shape == (2, 200)
    assert ds.y_train.dtype == np.int64 and set(ds.y_train) == {0, 1} and ds.classes == ["0", "1"]


def write_course_h5(path, prefixes, m=6, shape=(4, 4, 3)):
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f["list_classes"] = np.array([b"no", b"yes"])
        for prefix in prefixes:
            f[f"{prefix}_set_x"] = rng.integers(0, 256, (m, *shape), dtype=np.uint8)
            f[f"{prefix}_set_y"] = np.arange(m) % 2


def test_images_dataset_test_part_from_the_same_file_another_file_or_none(tmp_path):
    write_course_h5(tmp_path / "both.h5", ["train", "test"])
    ds = load_dataset(data_cfg(dataset="images", path=str(tmp_path / "both.h5")))
    assert ds.X_train.shape == (48, 6) and ds.X_test.shape == (48, 6) and ds.classes == ["no", "yes"]
    assert ds.image_shape == (4, 4, 3)
    write_course_h5(tmp_path / "train.h5", ["train"])
    write_course_h5(tmp_path / "test.h5", ["test"], m=2)
    ds = load_dataset(data_cfg(dataset="images", path=str(tmp_path / "train.h5"), test_path=str(tmp_path / "test.h5")))
    assert ds.X_test.shape == (48, 2)
    cfg = data_cfg(dataset="images", path=str(tmp_path / "train.h5"), test_fraction=0.34)
    ds = load_dataset(cfg)
    assert ds.X_test is None
    assert {k: v.y.size for k, v in split_dataset(ds, cfg, np.random.default_rng(0)).items()} == {"train": 4, "test": 2}
    write_course_h5(tmp_path / "small.h5", ["test"], shape=(2, 2, 3))
    with pytest.raises(DltrainError, match=r"test images are \(2, 2, 3\) but the training images are \(4, 4, 3\)"):
        load_dataset(data_cfg(dataset="images", path=str(tmp_path / "train.h5"), test_path=str(tmp_path / "small.h5")))
    with pytest.raises(DltrainError, match="has no train_set_x, train_set_y; its keys are: list_classes, test_set_x"):
        load_dataset(data_cfg(dataset="images", path=str(tmp_path / "test.h5")))
