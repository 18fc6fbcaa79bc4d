"""Examples held raw (data.examples): uint8 stays uint8, batches normalized with the same bits, no float copy of a split."""

import tracemalloc

import h5py
import numpy as np
import pytest

from dltrain.commands.build import build_permutation, build_schedule, build_training, prepare_data, same_data
from dltrain.config import validate_config
from dltrain.data import fingerprint
from dltrain.data.examples import ArrayRows, Examples, streaming_stats
from dltrain.data.prepare import apply_normalization, normalization_stats
from dltrain.engine.model import evaluate
from dltrain.engine.train import train_epochs


def images_file(path, m=600, side=16, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["train_set_x"] = rng.integers(0, 256, (m, side, side, 3), dtype=np.uint8)
        f["train_set_y"] = rng.integers(0, 2, m)
        f["list_classes"] = np.array([b"no", b"yes"])
    return path


def config(path, **data):
    return validate_config({
        "name": "raw", "seed": 1, "dtype": data.pop("dtype", "float64"),
        "data": {"dataset": "images", "path": str(path), **data},
        "model": {"layers": ["auto", 8, 1], "hidden_activation": "relu", "output_activation": "sigmoid"},
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "training": {"epochs": 2, "batch_size": 32},
    })


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("normalize", ["scale", "standardize", "none"])
def test_batches_have_the_bits_of_the_whole_normalized_array(tmp_path, dtype, normalize):
    data = prepare_data(config(images_file(tmp_path / "x.h5"), dtype=dtype, normalize=normalize, dev_fraction=0.1))
    X = data.X["train"]
    assert X.store.dtype == np.uint8  # held raw
    raw = data.dataset.X_train[:, X.index].astype(np.float64)
    whole = np.asfortranarray(apply_normalization(raw, data.normalization), dtype=dtype)  # what prepare_data made before
    cols = np.random.default_rng(0).permutation(X.shape[1])[:50]
    batch = X.columns(cols)
    assert batch.dtype == dtype and batch.flags.f_contiguous
    np.testing.assert_array_equal(batch, whole[:, cols])
    np.testing.assert_array_equal(np.asarray(X), whole)


def test_streaming_statistics_match_the_two_pass_ones():
    rng = np.random.default_rng(3)
    rows = (rng.standard_normal((1000, 5)) * [1, 1e-3, 10, 0, 1] + [0, 1e6, -5, 7, 0]).astype(np.float64)
    got = streaming_stats(Examples(ArrayRows(rows), None, {}, np.float64))
    want = normalization_stats(rows.T, "standardize")
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got["std"], want["std"], rtol=1e-7)
    assert got["std"][3, 0] == 1.0  # a constant feature is left centred, not divided by zero


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_epoch_allocates_no_float_copy_of_the_split(tmp_path, dtype):
    cfg = config(images_file(tmp_path / "x.h5", m=4000), dtype=dtype, dev_fraction=0.1)
    data = prepare_data(cfg)
    t = build_training(cfg, data)
    X, Y = data.X["train"], data.Y["train"]
    split_float_bytes = X.shape[0] * X.shape[1] * np.dtype(dtype).itemsize
    tracemalloc.start()
    try:
        for _ in train_epochs(X, Y, t.params, t.state, t.net, t.optimizer, build_schedule(cfg), 2, 32,
                              build_permutation(cfg, t.rng, X.shape[1])):
            evaluate(data.X["dev"], data.Y["dev"], t.params, t.net, t.state)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Batch buffers (32 examples), the dev chunk, activations and Adam's state: well under one float copy.
    assert peak < split_float_bytes / 2, (peak, split_float_bytes)


def test_runs_recorded_with_float_features_are_still_recognized(tmp_path):
    data = prepare_data(config(images_file(tmp_path / "x.h5")))
    ds = data.dataset
    old = fingerprint(ds._replace(X_train=ds.X_train.astype(np.float64)))  # how earlier versions hashed the images
    assert data.fingerprint != old and same_data(data, old) and same_data(data, data.fingerprint)
    assert not same_data(data, fingerprint(ds._replace(X_train=ds.X_train[:, ::-1].astype(np.float64))))


def test_import_writes_in_blocks_with_progress(tmp_path, monkeypatch):
    from PIL import Image

    from dltrain.data import images

    for c, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / "src" / c).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (6, 5), colour).save(tmp_path / "src" / c / f"{i}.png")
    monkeypatch.setattr(images, "IMPORT_BLOCK", 3)
    calls = []
    result = images.import_image_folder(tmp_path / "src", tmp_path / "o.h5", 4, 0.2, 0, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 10), (2, 10), (5, 10), (8, 10), (10, 10)]  # the total first, the 2 test images, then 8 train in blocks of 3
    with h5py.File(result.out) as f:
        x, y = f["train_set_x"][()], f["train_set_y"][()]
    assert x.shape == (8, 4, 4, 3) and (x[y == 0][..., 0] == 255).all() and (x[y == 1][..., 2] == 255).all()
