"""`datasets import` at scale: unreadable images stop the import (named) or are skipped (named, counted,
left out with their labels), progress counts every image, and the storage is chosen by --compression."""

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import dltrain
from dltrain.cli import app
from dltrain.data import images
from dltrain.errors import DltrainError

runner = CliRunner()
COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


def folder_with_bad_images(root):
    """Three classes of 7 solid-colour images each; red/2.png is empty, green/bad.jpg is not a JPEG and
    blue/6.jpg is a truncated JPEG: 18 readable images."""
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(7):
            Image.new("RGB", (9, 7), colour).save(root / name / f"{i}.png")
    (root / "red" / "2.png").write_bytes(b"")
    (root / "green" / "6.png").unlink()
    (root / "green" / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "blue" / "6.png").unlink()
    Image.new("RGB", (64, 64), COLOURS["blue"]).save(root / "blue" / "6.jpg", quality=95)
    data = (root / "blue" / "6.jpg").read_bytes()
    (root / "blue" / "6.jpg").write_bytes(data[: len(data) // 3])
    return root


BAD = {"red/2.png", "green/bad.jpg", "blue/6.jpg"}


def read_parts(path):
    with h5py.File(path) as f:
        classes = [c.decode() for c in f["list_classes"][()]]
        parts = {s: (f[f"{s}_set_x"][()], f[f"{s}_set_y"][()]) for s in ("train", "test") if f"{s}_set_x" in f}
        return classes, parts, dict(f.attrs), f["train_set_x"].compression


def test_an_unreadable_image_stops_the_import_and_is_named(tmp_path):
    src = folder_with_bad_images(tmp_path / "src")
    res = runner.invoke(app, ["datasets", "import", str(src), str(tmp_path / "o.h5"), "--size", "4"])
    assert res.exit_code == 1
    line = " ".join(res.output.split())
    assert line.startswith("error: image ") and "cannot be read as an image" in line and "--on-error skip" in line
    assert any(name in line for name in BAD)
    assert not list(tmp_path.glob("*o.h5*"))  # no output, no temporary file


@pytest.mark.parametrize("compression", ["none", "gzip"])  # contiguous datasets are compacted, chunked ones shrunk
def test_skip_leaves_unreadable_images_out_with_their_labels_and_names_them(tmp_path, compression):
    src = folder_with_bad_images(tmp_path / "src")
    out = tmp_path / "o.h5"
    res = runner.invoke(app, ["datasets", "import", str(src), str(out), "--size", "4", "--test-fraction", "0.25",
                              "--on-error", "skip", "--compression", compression])
    assert res.exit_code == 0, res.output
    assert "skipped 3 unreadable images (left out with their labels):" in res.output
    assert res.output.index("│ train") < res.output.index("│ test")  # the counts table's rows in the usual order
    listed = [line.strip() for line in res.output.splitlines() if line.startswith("  ") and "cannot be read" in line]
    assert len(listed) == 3 and {str(src / name) for name in BAD} == {line.split(": ")[0] for line in listed}
    classes, parts, attrs, stored = read_parts(out)
    assert classes == ["blue", "green", "red"] and attrs["skipped"] == 3 and stored == (None if compression == "none" else "gzip")
    assert not list(tmp_path.glob(".o.h5*"))  # no temporary file left
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    assert len(x_train) + len(x_test) == 18 and len(y_train) == len(x_train) and len(y_test) == len(x_test)
    # Every written image sits next to its own label: the colours match the classes'.
    for x, y in parts.values():
        for pixels, label in zip(x, y):
            assert tuple(pixels[0, 0]) == COLOURS[classes[label]]
    assert sorted(np.bincount(np.concatenate([y_train, y_test])).tolist()) == [6, 6, 6]


def test_the_python_function_skips_and_reports_progress(tmp_path, monkeypatch):
    src = folder_with_bad_images(tmp_path / "src")
    monkeypatch.setattr(images, "IMPORT_BLOCK", 4)
    calls = []
    result = dltrain.import_images(src, tmp_path / "o.h5", 4, 0.0, 0, progress=lambda d, t: calls.append((d, t)), on_error="skip")
    assert calls == [(0, 21), (4, 21), (8, 21), (12, 21), (16, 21), (20, 21), (21, 21)]  # the total first; skipped images count as done
    assert {str(e.path.relative_to(src)) for e in result.skipped} == BAD
    assert all("cannot be read as an image" in e.reason and "remove or replace" not in e.reason for e in result.skipped)
    assert result.counts == {"train": [6, 6, 6]}
    with pytest.raises(DltrainError, match="on_error='ignore': expected one of stop, skip") as e:
        dltrain.import_images(src, tmp_path / "p.h5", 4, 0.0, 0, on_error="ignore")
    assert e.value.exit_code == 2


def test_a_part_with_no_readable_image_is_an_error(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "src" / name).mkdir(parents=True)
        (tmp_path / "src" / name / "x.png").write_bytes(b"junk")
    with pytest.raises(DltrainError, match="none of the 2 images of the train part can be read"):
        images.import_image_folder(tmp_path / "src", tmp_path / "o.h5", 4, 0.0, 0, on_error="skip")
    assert not list(tmp_path.glob("*o.h5*"))


@pytest.mark.parametrize("choice,stored", [(None, None), ("none", None), ("gzip", "gzip"), ("lzf", "lzf")])
def test_compression_option(tmp_path, choice, stored):
    src = tmp_path / "src"
    for name, colour in COLOURS.items():
        (src / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (5, 5), colour).save(src / name / f"{i}.png")
    args = ["datasets", "import", str(src), str(tmp_path / "o.h5"), "--size", "4"] + (["--compression", choice] if choice else [])
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    classes, parts, attrs, compression = read_parts(tmp_path / "o.h5")
    assert compression == stored and attrs["compression"] == (choice or "none")
    assert sum(len(x) for x, _ in parts.values()) == 9
    assert runner.invoke(app, [*args[:4], "--compression", "zstd"]).exit_code == 2
