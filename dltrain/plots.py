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
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter


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


FORMATS = ("png", "svg", "pdf")


def save(fig: Figure, fmt: str) -> bytes:
    """The figure as bytes of one of FORMATS (png at 100 dpi)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=100)
    return buf.getvalue()


def _label_narrow_log_axis(axis, scale: str) -> None:
    """Tick labels on a log or logit axis whose values span too little for a labelled major tick (a range
    within one decade): a few ticks evenly spaced on the axis's own scale, each labelled with its value."""
    lo, hi = axis.get_view_interval()
    if not lo < hi:
        return
    inside = [v for v in axis.get_major_locator().tick_values(lo, hi) if lo <= v <= hi]
    # matplotlib's logit labels within a decade of 1 - x read "1 − 5·10⁻²" and run into each other
    narrow_logit = scale == "logit" and (hi / (1 - hi)) / (lo / (1 - lo)) < 10
    if len(inside) >= 2 and not narrow_logit:
        return
    if scale == "log":
        exact = [10 ** v for v in np.linspace(math.log10(lo), math.log10(hi), 5)[1:-1]]
    else:
        exact = [1 / (1 + math.exp(-v)) for v in np.linspace(math.log(lo / (1 - lo)), math.log(hi / (1 - hi)), 5)[1:-1]]
    for digits in range(2, 16):  # the fewest significant digits that keep the three ticks apart and in view
        # near 1 (logit: beta) round the distance to 1, so 0.9995 does not become 1
        ticks = [1 - float(f"{1 - v:.{digits}g}") if scale == "logit" and v > 0.5 else float(f"{v:.{digits}g}") for v in exact]
        if len(set(ticks)) == len(ticks) and all(lo <= v <= hi for v in ticks):
            break
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.{digits + 1}g}"))
    axis.set_minor_formatter(NullFormatter())


def _series(data: "list[dict] | dict[str, np.ndarray]", key: str) -> tuple[list, list]:
    """(epochs, values) of a column, skipping epochs where it has no value.

    data: history rows (dicts), or columns as arrays (curve.csv, runs.read_curve), nan where empty.
    """
    if isinstance(data, dict):
        if key not in data:
            return [], []
        values = np.asarray(data[key], dtype=np.float64)
        keep = ~np.isnan(values)
        return np.asarray(data["epoch"])[keep], values[keep]
    pairs = [(r["epoch"], r[key]) for r in data if r.get(key) not in (None, "")]
    return ([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else ([], [])


def _line(ax, epochs, values, **style):
    """A curve; epochs that stand alone (dev cost evaluated every log_every epochs) also get dots."""
    if 1 < len(epochs) <= 60 and np.min(np.diff(epochs)) > 1:
        style = {"marker": ".", "markersize": 5, **style}
    ax.plot(epochs, values, **style)


def cost_curve(curve: "list[dict] | dict[str, np.ndarray]", title: str, marks: dict[str, int] | None = None) -> Figure:
    """Train and dev cost, the learning rate on a second axis (as steps: the rate in force during
    each epoch), and epoch markers.

    curve: every epoch's epoch, learning_rate, cost, data_cost and (where evaluated) dev_cost, as
    runs.read_curve returns curve.csv; history rows (logged epochs only) work too. The data cost
    (no penalty) is drawn beside the cost when they differ: it is what dev_cost measures.
    marks: label -> epoch, drawn as dotted vertical lines (e.g. {"best": 120, "stopped": 170}).
    """
    fig, ax = _subplots(figsize=(7, 4.5))
    cost, data_cost = _series(curve, "cost"), _series(curve, "data_cost")
    regularized = len(data_cost[1]) == len(cost[1]) and np.any(np.asarray(cost[1]) != np.asarray(data_cost[1]))
    _line(ax, *cost, color="C0", label="train cost (with penalty)" if regularized else "train cost")
    if regularized:
        _line(ax, *data_cost, color="C2", label="train data cost (no penalty)")
    dev = _series(curve, "dev_cost")
    if len(dev[0]):
        _line(ax, *dev, color="C1", label="dev cost")
    for i, (label, epoch) in enumerate((marks or {}).items()):
        ax.axvline(epoch, color=f"C{3 + i}", linestyle=":", linewidth=1.5, label=f"{label} epoch {epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    top = ax
    lr = _series(curve, "learning_rate")
    if len(lr[0]):
        # The legend goes on the twin axis, drawn last, so no line crosses it.
        top = ax2 = ax.twinx()
        ax2.plot(*lr, color="0.5", linestyle="--", linewidth=1, drawstyle="steps-post", label="learning rate")
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


def decision_boundary(predict, X: np.ndarray, y: np.ndarray, title: str, classes: list[str] | None = None,
                      side: int = 300) -> Figure:
    """Predicted class over a side x side grid around 2-D data X (2, m), with the labelled points y (m,) on top.

    predict: grid (2, k) -> labels (k,). classes names the labels in the legend.
    """
    pad = 0.5
    x0 = np.linspace(X[0].min() - pad, X[0].max() + pad, side)
    x1 = np.linspace(X[1].min() - pad, X[1].max() + pad, side)
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


def search_scatter(records: list[dict], scales: dict[str, str], metric: str, title: str | None = None) -> Figure:
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
        if scales[key] in ("log", "logit"):
            ax.autoscale_view()
            _label_narrow_log_axis(ax.xaxis, scales[key])
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    if last_round > 1:
        fig.colorbar(points, ax=axes.ravel().tolist(), label="round", ticks=range(1, last_round + 1))
    fig.suptitle(title or f"{metric} of {len(records)} trials against the searched values")
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


def _window(data: "list[dict] | dict[str, np.ndarray]", first: int | None, last: int | None):
    """The epochs first..last (either None for no bound) of history rows or of columns as arrays."""
    if isinstance(data, dict):
        epoch = np.asarray(data["epoch"])
        keep = (epoch >= (first if first is not None else epoch.min(initial=0))) & (epoch <= (last if last is not None else epoch.max(initial=0)))
        return {k: np.asarray(v)[keep] for k, v in data.items()}
    return [r for r in data if (first is None or r["epoch"] >= first) and (last is None or r["epoch"] <= last)]


def compare_costs(curves: dict, title: str, metric: str = "cost", log: bool = False,
                  epochs: tuple[int | None, int | None] = (None, None)) -> Figure:
    """Overlay runs' curves of a history column, one color per run label. curves: label -> every
    epoch's columns (runs.run_curve) or history rows. metric "cost": train cost solid and dev cost
    dashed; "dev_cost" or "dev_accuracy": that column alone. log: a log y axis. epochs: (first, last)
    epoch drawn, either None for no bound."""
    first, last = epochs
    fig, ax = _subplots(figsize=(8, 5))
    for i, (label, rows) in enumerate(curves.items()):
        rows = _window(rows, first, last)
        color = f"C{i % 10}"
        if metric == "cost":
            ax.plot(*_series(rows, "cost"), color=color, label=f"{label} train")
            dev = _series(rows, "dev_cost")
            if len(dev[0]):
                ax.plot(*dev, color=color, linestyle="--", label=f"{label} dev")
        else:
            ax.plot(*_series(rows, metric), color=color, label=label)
    if log:
        ax.set_yscale("log")
        ax.autoscale_view()
        _label_narrow_log_axis(ax.yaxis, "log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if log else "major")
    ax.legend(fontsize=8)
    return _done(fig)
