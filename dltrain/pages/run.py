"""The report of one run folder: status, metrics, diagnosis, curves, figures, model, config, environment, commands."""

import shlex
from pathlib import Path

from dltrain import plots
from dltrain.errors import DltrainError
from dltrain.pages.page import blas_name, cell, esc, figure, fmt, key_values, page, pct, png_img, section, svg, table, thin
from dltrain.runs import load_run, read_json_file, read_model, run_curve

# The run folder's raster plots, in the order the page shows them: (file, caption).
RUN_PLOTS = [
    ("decision_boundary.png", "decision boundary (train split)"),
    ("confusion_matrix.png", "confusion matrix (held-out split: test, else dev, else train)"),
    ("misclassified.png", "most confident mistakes (held-out split)"),
]
GRADCHECK_FILE = "gradcheck.json"


def badge(status) -> str:
    return f'<span class="badge {esc(status)}">{esc(status or "unknown")}</span>'


def metrics_section(metrics: dict, status) -> str:
    splits = [s for s in ("train", "dev", "test") if isinstance(metrics.get(s), dict)]
    if not splits:
        return section("Results", f'<p class="muted">No metrics: the run is {esc(status or "not a completed run")}.</p>', "results")
    rows = []
    for s in splits:
        accuracy = metrics[s].get("accuracy")
        error = pct(1 - accuracy) if isinstance(accuracy, (int, float)) else ""
        rows.append([f"<td>{esc(s)}</td>", cell(metrics[s].get("examples")), cell(metrics[s].get("cost")), cell(accuracy),
                     f'<td class="num">{error}</td>'])
    return section("Results", table(["split", "examples", "cost", "accuracy", "error"], rows, "metrics"), "results")


def class_section(class_metrics: dict | None, note: str) -> str:
    if not class_metrics:
        return section("Per-class precision and recall", f'<p class="muted">{esc(note or "not available")}</p>', "classes")
    parts = []
    for split, per_class in class_metrics.items():
        rows = [[f"<td>{esc(name)}</td>", cell(m["precision"]), cell(m["recall"]), cell(m["f1"]), cell(m["support"])]
                for name, m in per_class.items()]
        parts.append(f"<h3>{esc(split)}</h3>" + table(["class", "precision", "recall", "F1", "support"], rows))
    return section("Per-class precision and recall", "".join(parts), "classes")


def diagnosis_section(d) -> str:
    if not isinstance(d, dict):
        return ""
    dev = d.get("dev_split") or "dev"
    pairs = [("problem", d.get("problem")), ("human error", pct(d.get("human_error"))), ("train error", pct(d.get("train_error"))),
             (f"{dev} error", pct(d.get("dev_error"))), ("avoidable bias (train - human)", pct(d.get("avoidable_bias"))),
             (f"variance ({dev} - train)", pct(d.get("variance"))), ("high when at least", pct(d.get("threshold")))]
    recipe = d.get("recipe") or []
    advice = ("<p>The course's basic recipe: fix high bias first, then high variance. Next steps:</p><ul class=\"recipe\">"
              + "".join(f"<li>{esc(step)}</li>" for step in recipe) + "</ul>") if recipe else \
        '<p class="muted">Neither gap reaches the threshold: no step of the recipe is called for.</p>'
    return section("Bias and variance", key_values(pairs) + advice, "diagnosis")


def cost_rows(record) -> tuple[list[dict], int]:
    """Every epoch's costs and learning rate (curve.csv) thinned for drawing, merged with the logged
    history rows, which carry the dev cost: the curve cost.png draws, in about MAX_POINTS points at most;
    and how many epochs were recorded."""
    curve = run_curve(record.dir, record.history)
    keys = [k for k in ("epoch", "learning_rate", "cost", "data_cost") if k in curve]
    drawn = thin(list(range(len(curve.get("epoch", [])))))  # the epochs' positions, so only drawn rows are built
    rows = {row["epoch"]: row for row in ({k: curve[k][i].item() for k in keys} for i in drawn)}
    for row in thin(record.history):
        rows[row["epoch"]] = {**rows.get(row["epoch"], {}), **row}
    return [rows[epoch] for epoch in sorted(rows)], max(len(curve.get("epoch", [])), len(record.history))


def curve_figures(record, name: str, marks: dict[str, int]) -> tuple[str, list[str]]:
    """The cost curve (and the norm curves, when logged) as inline SVG figures from curve.csv and
    history.csv, and the notes on what they draw. marks: label -> epoch (stopped, best)."""
    rows, recorded = cost_rows(record)
    figs = []
    if rows:
        figs.append(figure(svg(plots.cost_curve(rows, f"{name}: cost", marks)),
                           "train cost (with the L2/L1 penalty when there is one, and without it: data cost), dev cost, learning rate"))
        L = len(record.config.get("model", {}).get("layers", [])) - 1
        if L > 0 and any(f"norm_W{L}" in r for r in rows):
            figs.append(figure(svg(plots.norm_curves(rows, L, f"{name}: weight and gradient norms")), "||W[l]|| and ||dW[l]|| per layer"))
    notes = ["No history rows yet."] if not rows else []
    if 0 < len(rows) < recorded:
        notes.append(f"{recorded} epochs recorded, {len(rows)} drawn.")
    return "".join(figs), notes


def figure_marks(summary: dict) -> dict[str, int]:
    """The epochs a run's curves mark: where early stopping stopped and its best epoch."""
    return {k: summary[f"{k}_epoch"] for k in ("stopped", "best") if isinstance(summary.get(f"{k}_epoch"), int)}


def figure_name(record) -> str:
    """The run's name as its figure titles show it."""
    name = str(record.config.get("name") or record.summary.get("name") or record.dir.name)
    return name if len(name) <= 60 else name[:59] + "…"


def figures_section(record, name: str, curves: tuple[str, list[str]] | None = None) -> str:
    """Cost and norm curves (SVG; `curves`, when drawn already, is curve_figures' result) and the run
    folder's plots (PNG), side by side where they fit."""
    figs, notes = curves if curves is not None else curve_figures(record, name, figure_marks(record.summary))
    figs = [figs]
    run_dir = record.dir
    figs += [figure(png_img((run_dir / f).read_bytes(), caption), caption) for f, caption in RUN_PLOTS if (run_dir / f).is_file()]
    for path in sorted(run_dir.glob("evaluation_*.png")):
        caption = "dltrain evaluate: " + path.stem.removeprefix("evaluation_").replace("_", " ")
        figs.append(figure(png_img(path.read_bytes(), caption), caption))
    note = f'<p class="muted">{esc(" ".join(notes))}</p>' if notes else ""
    return section("Training curves and figures", f'<div class="figs">{"".join(figs)}</div>{note}', "figures")


def layer_rows(config: dict, params: dict | None) -> tuple[list[list[str]], int]:
    """One row per layer: units, activation, the shapes of its arrays, its parameter count; -> rows, total."""
    model = config.get("model", {})
    layers = model.get("layers", [])
    L = len(layers) - 1
    keep = config.get("regularization", {}).get("keep_prob", 1.0)
    rows, total = [], 0
    for l in range(1, L + 1):
        if params is not None:
            shapes = {k: tuple(params[f"{k}{l}"].shape) for k in ("W", "b", "gamma", "beta") if f"{k}{l}" in params}
        else:  # no model.h5 yet: the shapes the config makes
            units, prev = layers[l], layers[l - 1]
            bn = model.get("batch_norm") and l < L
            shapes = {"W": (units, prev), **({"gamma": (units, 1), "beta": (units, 1)} if bn else {"b": (units, 1)})}
        count = sum(a * b for a, b in shapes.values())
        total += count
        activation = model.get("output_activation") if l == L else model.get("hidden_activation")
        kp = keep[l - 1] if isinstance(keep, list) and l - 1 < len(keep) else keep if l < L else None
        rows.append([cell(l), cell(layers[l]), f"<td>{esc(activation)}</td>",
                     f"<td>{esc(', '.join(f'{k} {a}x{b}' for k, (a, b) in shapes.items()))}</td>", cell(kp), cell(count)])
    return rows, total


def model_section(run_dir: Path, config: dict) -> str:
    params, note = None, ""
    if (run_dir / "model.h5").is_file():
        try:
            params = read_model(run_dir / "model.h5").get("params")
        except DltrainError as e:
            note = f"model.h5 unreadable ({e}); shapes from config.yaml"
    else:
        note = "no model.h5 (the run did not complete): shapes from config.yaml"
    rows, total = layer_rows(config, params)
    layers = config.get("model", {}).get("layers", [])
    head = f"<p>Input: {esc(layers[0] if layers else '?')} features. {total:,} trainable parameters.</p>"
    foot = f'<p class="muted">{esc(note)}</p>' if note else ""
    return section("Model", head + table(["layer", "units", "activation", "arrays", "keep_prob", "parameters"], rows, "layers") + foot, "model")


def gradcheck_section(run_dir: Path) -> str:
    """gradcheck.json, when the run folder holds one: what `dltrain gradcheck RUN/config.yaml --json > RUN/gradcheck.json`
    prints (verdict, overall and per-array relative differences). No command writes it into the folder by itself."""
    result = read_json_file(run_dir / GRADCHECK_FILE)
    if not isinstance(result, dict):
        return ""
    params = [p for p in result.get("parameters", []) if isinstance(p, dict)] if isinstance(result.get("parameters"), list) else []
    rows = [[f"<td>{esc(p.get('name'))}</td>", cell(p.get("relative_difference")), cell(p.get("checked")), cell(p.get("size"))] for p in params]
    body = key_values([("verdict", result.get("verdict")), ("overall relative difference", result.get("overall")),
                       ("pass below", result.get("threshold")), ("epsilon", result.get("epsilon")), ("examples", result.get("examples")),
                       ("after epochs", result.get("after_epochs")), ("warnings", "; ".join(map(str, result.get("warnings") or [])))])
    table_html = table(["array", "relative difference", "entries checked", "size"], rows, "gradcheck-table") if rows else ""
    return section("Gradient check (gradcheck.json)", body + table_html, "gradcheck")


def environment_section(summary: dict, config: dict) -> str:
    versions = summary.get("versions", {}) if isinstance(summary.get("versions"), dict) else {}
    pairs = [(f"{k} version", v) for k, v in versions.items() if k != "blas"]
    pairs += [("BLAS", versions.get("blas") or f"not recorded by the run; this machine: {blas_name() or 'unknown'}"),
              ("dtype", summary.get("dtype") or config.get("dtype")), ("random generator", summary.get("rng")),
              ("seed", summary.get("seed")), ("host", summary.get("host")), ("started", summary.get("started")),
              ("data fingerprint", summary.get("data_fingerprint")),
              ("examples per split", ", ".join(f"{k} {v}" for k, v in (summary.get("split_counts") or {}).items())),
              ("resumed", ", ".join(f"at epoch {r.get('epoch')} ({r.get('at')})" for r in summary.get("resumed", []) if isinstance(r, dict)))]
    return section("Environment", key_values(pairs), "environment")


def commands_section(run_dir: Path, status) -> str:
    q = shlex.quote(str(run_dir))
    lines = [("re-run bit for bit and compare", f"dltrain reproduce {q}"),
             ("train a new run with this config", f"dltrain train {shlex.quote(str(run_dir / 'config.yaml'))}")]
    if status in ("interrupted", "running"):
        lines.append(("resume from the last checkpoint", f"dltrain train --resume {q}"))
    if status == "completed":
        lines += [("evaluate the saved model", f"dltrain evaluate {q}"), ("predict", f"dltrain predict {q} IMAGE_OR_ARRAY_FILES")]
    lines.append(("rebuild this page", f"dltrain report {q}"))
    rows = [[f"<td>{esc(what)}</td>", f"<td><code>{esc(cmd)}</code></td>"] for what, cmd in lines]
    return section("Commands", table(["to", "run"], rows), "commands")


def run_page(run_dir: Path, class_metrics: dict | None = None, class_note: str = "", curves: tuple[str, list[str]] | None = None) -> str:
    """The HTML report of run_dir. class_metrics: split -> class name -> precision/recall/f1/support;
    curves: curve_figures' result when drawn already (by train's figures process, while it drew the PNGs)."""
    run_dir = Path(run_dir)
    record = load_run(run_dir)
    s, cfg = record.summary, record.config
    name = figure_name(record)
    epochs = cfg.get("training", {}).get("epochs")
    facts = [f"{fmt(s.get('epochs_run'))} of {fmt(epochs)} epochs" if s.get("epochs_run") is not None else "",
             f"{fmt(s.get('duration_seconds'))} s" if s.get("duration_seconds") is not None else "",
             f"started {s.get('started')}" if s.get("started") else ""]
    subtitle = f"{badge(s.get('status'))} {esc(s.get('stop_reason') or '')}<br>{esc(' · '.join(f for f in facts if f))}"
    config_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    body = "".join([
        '<div class="row">',
        metrics_section(record.metrics, s.get("status")),
        class_section(class_metrics, class_note),
        diagnosis_section(record.metrics.get("diagnosis")),
        "</div>",
        figures_section(record, name, curves),
        model_section(run_dir, cfg),
        gradcheck_section(run_dir),
        section("Config (resolved, config.yaml)", f"<pre>{esc(config_text)}</pre>", "config"),
        environment_section(s, cfg),
        commands_section(run_dir, s.get("status")),
    ])
    return page(f"{run_dir.name}", subtitle, body)
