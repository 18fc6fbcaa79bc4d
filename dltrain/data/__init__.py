"""Datasets as arrays with examples as columns: X (n_x, m) float64, labels (m,) int64."""

from dltrain.data.core import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
