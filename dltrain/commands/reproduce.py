"""`dltrain reproduce`: train a completed run's config again and compare the two run folders bit for bit."""

import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dltrain.commands.run import Run
from dltrain.commands.train import train
from dltrain.commands.trained import run_config
from dltrain.engine.train import EpochResult
from dltrain.errors import DltrainError
from dltrain.runs import (
    CURVE,
    load_run,
    read_model,
)


class Reproduction(NamedTuple):
    run: Run  # the new run
    difference: str | None  # None: identical


def reproduce(
    run_dir: "str | Path",
    runs_dir: "str | Path | None" = None,
    progress: "bool | Callable[[EpochResult, dict | None], None] | None" = True,
    interrupt: threading.Event | None = None,
) -> Reproduction:
    """Train a completed run's saved config again into a new folder (next to it by default), on
    data with the recorded fingerprint, and compare the results (`dltrain reproduce`; see
    first_difference). progress and interrupt as for train()."""
    run_dir = Path(getattr(run_dir, "path", run_dir))
    summary = load_run(run_dir).summary
    status = summary.get("status")
    if status != "completed":
        raise DltrainError(f"{run_dir} is {status}; only a completed run can be reproduced")
    if not summary.get("data_fingerprint"):
        raise DltrainError(f"{run_dir}/summary.json has no data_fingerprint (an older dltrain wrote it): its data cannot be checked")
    cfg = run_config(run_dir)
    read_model(run_dir / "model.h5")  # before training: the comparison needs it
    run = train(cfg, runs_dir=runs_dir or run_dir.parent, progress=progress, interrupt=interrupt,
                expect_fingerprint=summary.get("data_fingerprint"))
    return Reproduction(run, first_difference(run_dir, run.path))


def first_difference(original: Path, copy: Path) -> str | None:
    """Where two runs' results first differ, as 'file: epoch/key/array: original vs copy', or None.

    history.csv is compared row by row on every column but `seconds` (wall time), then curve.csv
    (every epoch; when both runs have one), metrics.json, then every array (bit for bit) and
    attribute of model.h5.
    """
    first, second = load_run(original), load_run(copy)
    rows, copy_rows = first.history, second.history
    for a, b in zip(rows, copy_rows):
        for col in [c for c in union(a, b) if c != "seconds"]:
            if repr(a.get(col)) != repr(b.get(col)):
                return f"history.csv: epoch {a.get('epoch')}, {col}: {a.get(col)!r} vs {b.get(col)!r}"
    if len(rows) != len(copy_rows):
        return f"history.csv: {len(rows)} rows vs {len(copy_rows)}"
    difference = curve_difference(original / CURVE, copy / CURVE)
    if difference is not None:
        return difference
    metrics, copy_metrics = flatten(first.metrics), flatten(second.metrics)
    for key in union(metrics, copy_metrics):
        if repr(metrics.get(key)) != repr(copy_metrics.get(key)):
            return f"metrics.json: {key}: {metrics.get(key)!r} vs {copy_metrics.get(key)!r}"
    model, copy_model = read_model(original / "model.h5"), read_model(copy / "model.h5")
    for name in union(model, copy_model):
        a, b = model.get(name), copy_model.get(name)
        if not isinstance(a, dict) or not isinstance(b, dict):
            if a != b:
                return f"model.h5: attribute {name} differs"
            continue
        for key in union(a, b):
            x, y = a.get(key), b.get(key)
            if x is None or y is None or x.dtype != y.dtype or x.shape != y.shape:
                return f"model.h5: {name}/{key}: {describe(x)} vs {describe(y)}"
            if x.tobytes() != y.tobytes():
                return f"model.h5: {name}/{key}: largest difference {np.max(np.abs(x.astype(float) - y)):.3g}"
    return None


def curve_difference(original: Path, copy: Path) -> str | None:
    """The first epoch whose curve.csv row differs, or None (also when either run has no curve.csv)."""
    if not (original.is_file() and copy.is_file()):
        return None
    lines, copy_lines = original.read_text().splitlines(), copy.read_text().splitlines()
    for a, b in zip(lines, copy_lines):
        if a != b:
            return f"curve.csv: epoch {a.split(',', 1)[0]}: {a} vs {b}"
    if len(lines) != len(copy_lines):
        return f"curve.csv: {len(lines) - 1} epochs vs {len(copy_lines) - 1}"
    return None


def flatten(tree, prefix: str = "") -> dict:
    """{'dev': {'cost': 1}} -> {'dev.cost': 1}."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    out = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def union(a: dict, b: dict) -> list:
    """Keys of a in order, then those only b has."""
    return [*a, *(k for k in b if k not in a)]


def describe(array: np.ndarray | None) -> str:
    return "missing" if array is None else f"{array.dtype} {array.shape}"
