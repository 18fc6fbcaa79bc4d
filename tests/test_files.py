"""dataset: file — npz, h5, mat and csv readers, layouts, label forms, and one clear error per bad input."""

import h5py
import numpy as np
import pytest
import scipy.io

from dltrain.config import validate_data
from dltrain.data import load_dataset
from dltrain.errors import DltrainError

X_ROWS = np.arange(12, dtype=np.float64).reshape(6, 2)  # 6 examples, 2 features
Y_INT = np.array([0, 1, 2, 0, 1, 2])
Y_ONEHOT = np.eye(3)[Y_INT]  # (6, 3)


def load(**keys):
    return load_dataset(validate_data({"data": {"dataset": "file", **keys}}))


def test_npz_rows_with_integer_labels(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=X_ROWS, y_train=Y_INT, x_test=X_ROWS[:2], y_test=Y_INT[:2])
    ds = load(path=str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(ds.X_train, X_ROWS.T)
    assert ds.y_train.tolist() == Y_INT.tolist() and ds.X_test.shape == (2, 2)
    assert ds.classes == ["0", "1", "2"] and ds.image_shape is None


def test_npz_columns_with_one_hot_labels_and_class_names(tmp_path):
    np.savez(tmp_path / "d.npz", X=X_ROWS.T, Y=Y_ONEHOT.T)
    ds = load(path=str(tmp_path / "d.npz"), x_train="X", y_train="Y", layout="columns", classes=["a", "b", "c"])
    np.testing.assert_array_equal(ds.X_train, X_ROWS.T)
    assert ds.y_train.tolist() == Y_INT.tolist() and ds.X_test is None and ds.classes == ["a", "b", "c"]


def test_h5_rows_of_images_keep_their_shape(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 2, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x_train"], f["y_train"] = x, np.array([[1], [0], [1], [0]])
    ds = load(path=str(tmp_path / "d.h5"))
    assert ds.X_train.shape == (18, 4) and ds.image_shape == (3, 2, 3)
    np.testing.assert_array_equal(ds.X_train[:, 2], x[2].reshape(-1))


def test_mat_with_matlab_doubles_as_labels(tmp_path):
    scipy.io.savemat(tmp_path / "d.mat", {"X": X_ROWS, "y": Y_INT.reshape(-1, 1).astype(float) % 2})
    ds = load(path=str(tmp_path / "d.mat"), x_train="X", y_train="y", x_test=None, y_test=None)
    assert ds.X_train.shape == (2, 6) and ds.y_train.tolist() == [0, 1, 0, 0, 1, 0]


def test_csv_with_a_label_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,label,b\n1.5,1,2\n3,0,4e1\n\n5,1,-6\n")
    ds = load(path=str(tmp_path / "d.csv"), label_column="label", test_fraction=0.3)
    np.testing.assert_array_equal(ds.X_train, [[1.5, 3, 5], [2, 40, -6]])
    assert ds.y_train.tolist() == [1, 0, 1] and ds.X_test is None


@pytest.mark.parametrize(
    "arrays,keys,message",
    [
        ({"X": X_ROWS, "y": Y_INT}, {}, "has no x_train, y_train; its keys are: X, y"),
        ({"x_train": X_ROWS, "y_train": Y_INT}, {"x_test": "xv", "y_test": "yv"}, "has no xv, yv; its keys are: x_train, y_train"),
        ({"x_train": X_ROWS, "y_train": Y_INT[:5]}, {}, "x_train has 6 examples but y_train has 5 (layout: rows; shapes (6, 2) and (5,))"),
        ({"x_train": X_ROWS, "y_train": Y_INT - 1}, {}, "y_train must hold class labels 0..C-1, found -1 (example 0)"),
        ({"x_train": X_ROWS, "y_train": Y_INT + 0.5}, {}, "y_train must hold class labels 0..C-1, found 0.5 (example 0)"),
        ({"x_train": X_ROWS, "y_train": Y_ONEHOT * 2}, {}, "example 0 is not a single 1 among 0s"),
        ({"x_train": np.where(X_ROWS == 7, np.nan, X_ROWS), "y_train": Y_INT}, {},
         "x_train has 1 NaN/inf values (first at example 3, feature 1)"),
        ({"x_train": np.where(X_ROWS == 0, np.inf, X_ROWS), "y_train": Y_INT}, {}, "x_train has 1 NaN/inf values"),
        ({"x_train": X_ROWS, "y_train": Y_INT}, {"classes": ["a", "b"]}, "found label 2 but data.classes names 2 classes"),
        ({"x_train": X_ROWS, "y_train": Y_INT + 1}, {"classes": ["a", "b", "c"]},
         "found label 3 but data.classes names 3 classes (0..2); labels start at 0, yours at 1: subtract 1 from them"),
        ({"x_train": X_ROWS, "y_train": Y_INT, "x_test": X_ROWS[:, :1], "y_test": Y_INT}, {},
         "x_test has 1 features but x_train has 2"),
        ({"x_train": X_ROWS, "y_train": Y_INT, "x_test": X_ROWS}, {}, "has only one of x_test, y_test"),
        ({"x_train": np.array(["a", "b"]), "y_train": Y_INT}, {}, "x_train must hold numbers, got dtype <U1"),
    ],
)
def test_bad_arrays_give_one_clear_message(tmp_path, arrays, keys, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DltrainError) as e:
        load(path=str(tmp_path / "d.npz"), **keys)
    assert message in str(e.value) and str(tmp_path / "d.npz") in str(e.value)
    assert len(str(e.value).splitlines()) == 1 and e.value.exit_code == 1


def test_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.array([{"a": 1}], dtype=object), y_train=Y_INT)
    with pytest.raises(DltrainError, match="not a readable NumPy .npz file .*allow_pickle=False"):
        load(path=str(tmp_path / "d.npz"))


@pytest.mark.parametrize("suffix,kind", [(".npz", "NumPy .npz"), (".h5", "HDF5"), (".mat", "MATLAB .mat")])
def test_missing_corrupt_or_truncated_files(tmp_path, suffix, kind):
    path = tmp_path / f"d{suffix}"
    with pytest.raises(DltrainError, match=f"data file {path} not found \\(looked in {tmp_path}\\); check data.path"):
        load(path=str(path))
    path.write_bytes(b"\x00garbage" * 40)
    with pytest.raises(DltrainError, match=f"data file {path} is not a readable {kind} file"):
        load(path=str(path))


def test_truncated_mat_file(tmp_path):
    scipy.io.savemat(tmp_path / "full.mat", {"x_train": X_ROWS, "y_train": Y_INT})
    (tmp_path / "d.mat").write_bytes((tmp_path / "full.mat").read_bytes()[:200])
    with pytest.raises(DltrainError, match="is not a readable MATLAB .mat file"):
        load(path=str(tmp_path / "d.mat"))


def test_csv_text_labels_are_classes_in_sorted_order(tmp_path):
    (tmp_path / "d.csv").write_text("a,label\n1,yes\n2,no\n3,maybe\n4, no\n")
    ds = load(path=str(tmp_path / "d.csv"), label_column="label")
    assert ds.classes == ["maybe", "no", "yes"] and ds.y_train.tolist() == [2, 1, 0, 1]
    # data.classes chooses the order (which class is the positive class 1 of a sigmoid output).
    ds = load(path=str(tmp_path / "d.csv"), label_column="label", classes=["yes", "no", "maybe"])
    assert ds.classes == ["yes", "no", "maybe"] and ds.y_train.tolist() == [0, 1, 2, 1]
    # Numbers stay numbers, named '0'..'C-1' as from any file.
    (tmp_path / "n.csv").write_text("a,label\n1,1\n2,0.0\n")
    ds = load(path=str(tmp_path / "n.csv"), label_column="label")
    assert ds.classes == ["0", "1"] and ds.y_train.tolist() == [1, 0]


@pytest.mark.parametrize(
    "text,keys,message",
    [
        ("a,label\n1,no\n2,\n", {}, "line 3, column 'label': empty label; every row needs its class"),
        ("a,label\n1,no\n2,perhaps\n", {"classes": ["no", "yes"]}, "line 3, column 'label': 'perhaps' is not one of the classes 'no', 'yes'"),
    ],
)
def test_bad_csv_text_labels(tmp_path, text, keys, message):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DltrainError) as e:
        load(path=str(tmp_path / "d.csv"), label_column="label", **keys)
    assert message in str(e.value) and e.value.exit_code == 1 and len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "is empty; expected a header row"),
        ("a,b\n1,0\n", "has no column 'label'; its columns are: a, b"),
        ("a,label\n1,0\n2\n", "line 3: 1 fields, the header has 2"),
        ("a,label\n1,0\nx,1\n", "line 3, column 'a': 'x' is not a number"),
        ("a,label\n1,0\nnan,1\n", "features has 1 NaN/inf values (first at example 1, feature 0)"),
        ("a,label\n1,0\n2,3.5\n", "column 'label' must hold class labels 0..C-1, found 3.5 (example 1)"),
        ("a,label\n", "has a header but no rows"),
    ],
)
def test_bad_csv(tmp_path, text, message):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DltrainError, match=None) as e:
        load(path=str(tmp_path / "d.csv"), label_column="label")
    assert message in str(e.value) and len(str(e.value).splitlines()) == 1
