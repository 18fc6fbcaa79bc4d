"""`dltrain datasets`: the catalog, what a data section loads, image-folder import."""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from dltrain.config import apply_overrides, load_config, safe_tree, validate_data
from dltrain.data import load_dataset
from dltrain.data.core import CATALOG, LOADERS
from dltrain.data.prepare import (
    split_dataset,
)
from dltrain.errors import DltrainError


class CatalogEntry(NamedTuple):
    name: str
    select: str  # the data: keys that select it
    files: list[tuple[Path, bool]]  # where each file is looked for, and whether it is there


def list_datasets(data_dir: Path = Path("datasets")) -> list[CatalogEntry]:
    """The known datasets: how a config selects each, and which of their files are in data_dir."""
    return [
        CatalogEntry(name, select.replace("DIR", str(data_dir)), [(data_dir / f, (data_dir / f).is_file()) for f in files])
        for name, select, files in CATALOG
    ]


class DatasetInfo(NamedTuple):
    dataset: str
    classes: list[str]
    n_x: int
    image_shape: tuple[int, ...] | None
    counts: dict[str, list[int]]  # split -> examples per class
    value_range: tuple[float, float]  # min and max of the raw training features


def dataset_info(spec: str, overrides: list[str] = ()) -> DatasetInfo:
    """Shapes, classes and per-split class counts of a config file's `data:` section or a dataset name.

    The splits are carved exactly as `train` carves them (same data.split_seed).
    """
    # Catalog entries that are files in a general format (football.mat) are selected by their keys.
    selects = {name: select.replace("DIR", "datasets") for name, select, _ in CATALOG if name not in LOADERS}
    if spec in LOADERS or spec in selects:
        tree = {"data": {"dataset": spec} if spec in LOADERS else safe_tree(f"{{{selects[spec]}}}", f"dataset {spec}")}
        apply_overrides(tree, list(overrides))
        data = validate_data(tree, source=f"dataset {spec}")
    elif Path(spec).suffix.lower() in (".yaml", ".yml"):
        data = load_config(spec, list(overrides)).data
    else:
        raise DltrainError(f"{spec!r} is neither a config file (.yaml) nor a dataset name ({', '.join([*LOADERS, *selects])})", 2)
    ds = load_dataset(data)
    splits = split_dataset(ds, data, np.random.default_rng(data.split_seed))
    counts = {k: np.bincount(v.y, minlength=len(ds.classes)).tolist() for k, v in splits.items()}
    X = splits["train"].X
    return DatasetInfo(data.dataset, ds.classes, X.shape[0], ds.image_shape, counts, (float(X.min()), float(X.max())))
