"""Matplotlib (Agg) figures from run data; each function writes one PNG and returns nothing."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402


def cost_curve(path: Path, rows: list[dict], title: str, marks: dict[str, int] | None = None) -> None:
    """Train (and dev) cost per logged epoch; `marks` draws labelled vertical lines (e.g. stopped, best epoch)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["cost"] for r in rows], label="train cost")
    dev = [(r["epoch"], r["dev_cost"]) for r in rows if r.get("dev_cost") not in (None, "")]
    if dev:
        ax.plot(*zip(*dev), label="dev cost")
    for (label, epoch), style in zip((marks or {}).items(), ("--", ":", "-.")):
        ax.axvline(epoch, color="gray", linestyle=style, label=f"{label} epoch {epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def decision_boundary(path: Path, predict, X: np.ndarray, y: np.ndarray, title: str) -> None:
    """Predicted class over a grid around 2-D data X (2, m), with the labelled points on top."""
    pad = 0.5
    x0 = np.linspace(X[0].min() - pad, X[0].max() + pad, 300)
    x1 = np.linspace(X[1].min() - pad, X[1].max() + pad, 300)
    g0, g1 = np.meshgrid(x0, x1)
    grid = np.vstack([g0.ravel(), g1.ravel()])
    Z = predict(grid).reshape(g0.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(g0, g1, Z, alpha=0.35, cmap=plt.cm.Spectral)
    ax.scatter(X[0], X[1], c=y, s=14, cmap=plt.cm.Spectral, edgecolors="k", linewidths=0.3)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def search_scatter(path: Path, records: list[dict], scales: dict[str, str], metric: str) -> None:
    """The metric of each completed trial against each searched key path (one panel each), colored by round.

    scales[key]: linear | log | logit (for values like beta near 1) | category (choice options).
    """
    keys = list(scales)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.4 * rows), squeeze=False, layout="constrained")
    y = [r["metrics"][metric] for r in records]
    rounds = [r["round"] for r in records]
    last_round = max(rounds, default=1)
    for ax, key in zip(axes.flat, keys):
        x = [r["values"][key] for r in records]
        if scales[key] == "category":
            labels = list(dict.fromkeys(str(v) for v in x))
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
            ax.set_xlim(-0.5, len(labels) - 0.5)
            x = [labels.index(str(v)) for v in x]
        elif scales[key] != "linear":
            ax.set_xscale(scales[key])
            # Narrow ranges would get a crowded label on every minor tick.
            ax.xaxis.set_minor_formatter(NullFormatter())
        points = ax.scatter(x, y, c=rounds, cmap="viridis", vmin=1, vmax=max(last_round, 2), s=22, edgecolors="k", linewidths=0.3)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    if last_round > 1:
        fig.colorbar(points, ax=axes.ravel().tolist(), label="round", ticks=range(1, last_round + 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
