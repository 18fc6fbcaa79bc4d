"""Matplotlib figures from run data; each function returns one Figure, `png(fig)` its PNG bytes.

Figures are made without pyplot: no global figure registry and no backend switch, so they are
safe in worker threads and leave a notebook's inline backend alone. A notebook shows a returned
Figure inline (its `_repr_png_`); the run folder gets `png(fig)` written by RunWriter, by the same
temporary-name-and-rename as every other file.
"""

import io
import math

import matplotlib
import matplotlib.figure
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.ticker import NullFormatter


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that Jupyter displays as PNG even where pyplot was never imported."""

    def _repr_png_(self) -> bytes:
        return png(self)


def _subplots(*args, layout: str | None = None, figsize=(7, 4.5), **kwargs):
    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*args, **kwargs)


def _done(fig: Figure) -> Figure:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (100 dpi)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    """(epochs, values) of a history column, skipping rows where it is empty."""
    pairs = [(r["epoch"], r[key]) for r in rows if r.get(key) not in (None, "")]
    return ([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else ([], [])


def cost_curve(rows: list[dict], title: str, marks: dict[str, int] | None = None, data_cost: bool = False) -> Figure:
    """Train and dev cost per logged epoch, the learning rate on a second axis, and epoch markers.

    rows: history rows (epoch, cost, optional dev_cost, learning_rate). marks: label -> epoch,
    drawn as dotted vertical lines (e.g. {"best epoch": 120, "stopped": 170}). data_cost: also draw
    the train cost without the L2/L1 penalty (history's data_cost) when a penalty makes it differ.
    """
    fig, ax = _subplots(figsize=(7, 4.5))
    penalized = data_cost and any(r.get("penalty") not in (None, "", 0, 0.0) for r in rows)
    ax.plot(*_series(rows, "cost"), color="C0", label="train cost (regularized)" if penalized else "train cost")
    if penalized:
        ax.plot(*_series(rows, "data_cost"), color="C2", linewidth=1, label="train data cost")
    dev = _series(rows, "dev_cost")
    if dev[0]:
        ax.plot(*dev, color="C1", label="dev cost")
    for i, (label, epoch) in enumerate((marks or {}).items()):
        ax.axvline(epoch, color=f"C{3 + i}", linestyle=":", linewidth=1.5, label=f"{label} epoch {epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    top = ax
    lr = _series(rows, "learning_rate")
    if lr[0]:
        # The legend goes on the twin axis, drawn last, so no line crosses it.
        top = ax2 = ax.twinx()
        ax2.plot(*lr, color="0.5", linestyle="--", linewidth=1, label="learning rate")
        ax2.set_ylabel("learning rate", color="0.4")
        ax2.tick_params(axis="y", colors="0.4")
        if min(lr[1]) > 0 and max(lr[1]) / min(lr[1]) > 100:
            ax2.set_yscale("log")
        else:
            # From 0, so a constant rate is a flat line, not a line in a magnified noise band.
            ax2.set_ylim(0, 1.1 * max(lr[1]))
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    top.legend(handles, labels, loc="upper right", framealpha=0.9)
    return _done(fig)


def decision_boundary(predict, X: np.ndarray, y: np.ndarray, title: str, classes: list[str] | None = None) -> Figure:
    """Predicted class over a grid around 2-D data X (2, m), with the labelled points y (m,) on top.

    predict: grid (2, k) -> labels (k,). classes names the labels in the legend.
    """
    pad = 0.5
    x0 = np.linspace(X[0].min() - pad, X[0].max() + pad, 300)
    x1 = np.linspace(X[1].min() - pad, X[1].max() + pad, 300)
    g0, g1 = np.meshgrid(x0, x1)
    grid = np.vstack([g0.ravel(), g1.ravel()])
    Z = predict(grid).reshape(g0.shape)
    fig, ax = _subplots(figsize=(6, 5))
    ax.contourf(g0, g1, Z, alpha=0.35, cmap=matplotlib.colormaps["Spectral"])
    points = ax.scatter(X[0], X[1], c=y, s=14, cmap=matplotlib.colormaps["Spectral"], edgecolors="k", linewidths=0.3)
    if classes is not None:
        handles, _ = points.legend_elements()
        ax.legend(handles, [classes[c] for c in np.unique(y)], loc="upper right", fontsize=8)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title)
    return _done(fig)


def search_scatter(records: list[dict], scales: dict[str, str], metric: str) -> Figure:
    """The metric of each completed trial against each searched key path (one panel each), colored by round.

    scales[key]: linear | log | logit (for values like beta near 1) | category (choice options).
    """
    keys = list(scales)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = _subplots(rows, cols, figsize=(4.3 * cols, 3.4 * rows), squeeze=False, layout="constrained")
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
    return _done(fig)


def image_grid(images: np.ndarray, captions: list[str], title: str, columns: int = 6) -> Figure:
    """Images (k, h, w, c) with values in [0, 1], each with its caption; k >= 1."""
    k = len(images)
    columns = min(columns, k)
    rows = math.ceil(k / columns)
    fig, axes = _subplots(rows, columns, figsize=(2.0 * columns, 2.35 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, caption in zip(axes.ravel(), images, captions):
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title)
    return _done(fig)


def confusion_heatmap(counts: np.ndarray, classes: list[str], title: str) -> Figure:
    """Counts (C, C), rows true class and columns predicted class, as an annotated heat map."""
    C = len(classes)
    size = max(4.5, 0.6 * C + 2.5)
    fig, ax = _subplots(figsize=(size, size * 0.85))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    long_names = max(map(len, classes)) > 3
    ax.set_xticks(range(C), classes, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(C), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = counts.max() / 2 if counts.size else 0
    for i in range(C):
        for j in range(C):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=9,
                    color="white" if counts[i, j] > threshold else "black")
    ax.set_title(title)
    return _done(fig)


def norm_curves(rows: list[dict], L: int, title: str) -> Figure:
    """||W[l]|| (solid) and ||dW[l]|| (dashed) per layer l = 1..L against the epoch, log scale.

    A norm of exactly 0 (zero init, every ReLU unit dead) has no place on a log axis; it is drawn
    as an x on a line below the smallest nonzero norm, because a vanished gradient is the point.
    """
    series = {(l, key): _series(rows, key) for l in range(1, L + 1) for key in (f"norm_W{l}", f"norm_dW{l}")}
    positive = [v for _, values in series.values() for v in values if v > 0]
    floor = min(positive) / 10 if positive else 1e-12
    fig, ax = _subplots(figsize=(7, 4.5))
    any_zero = False
    for (l, key), (epochs, values) in series.items():
        color, style = f"C{(l - 1) % 10}", "--" if key.startswith("norm_dW") else "-"
        # NaN breaks the line at zeros; the dots keep isolated nonzero values visible.
        ax.plot(epochs, [v if v > 0 else np.nan for v in values], color=color, linestyle=style, marker=".",
                markersize=4, label=f"||{key[5:]}||")
        zeros = [e for e, v in zip(epochs, values) if v <= 0]
        if zeros:
            any_zero = True
            ax.plot(zeros, [floor] * len(zeros), color=color, linestyle="none", marker="x")
    if any_zero:
        ax.axhline(floor, color="0.6", linewidth=0.8)
        ax.annotate("x: exactly 0", (0.01, floor), xycoords=("axes fraction", "data"), xytext=(0, 4),
                    textcoords="offset points", fontsize=8, color="0.3")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Frobenius norm")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(ncol=2 if L > 3 else 1, fontsize=8)
    return _done(fig)


def compare_costs(curves: dict[str, list[dict]], title: str) -> Figure:
    """Overlay runs' cost curves: train cost solid and dev cost dashed, one color per run label."""
    fig, ax = _subplots(figsize=(8, 5))
    for i, (label, rows) in enumerate(curves.items()):
        color = f"C{i % 10}"
        ax.plot(*_series(rows, "cost"), color=color, label=f"{label} train")
        dev = _series(rows, "dev_cost")
        if dev[0]:
            ax.plot(*dev, color=color, linestyle="--", label=f"{label} dev")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _done(fig)
