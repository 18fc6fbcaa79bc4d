"""What the CLI prints: result tables, the diagnosis, gradient-check reports, search progress.

Only the CLI imports this module (rich output on the terminal, plain wide tables when piped).
"""

import contextlib
import re
import time
import warnings

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from dltrain.errors import TrackingWarning

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_results(cfg, run, quiet: bool) -> None:
    if not quiet:
        summary, metrics = run.summary, run.metrics
        table = Table(title=f"{cfg.name}: {summary['epochs_run']} epochs in {summary['duration_seconds']:.1f}s")
        for col in ("split", "examples", "cost", "accuracy"):
            table.add_column(col, justify="right" if col != "split" else "left")
        for split, m in metrics.items():
            if split != "diagnosis":
                table.add_row(split, str(m["examples"]), f"{m['cost']:.6f}", f"{m['accuracy']:.4f}")
        out.print(table)
        if "best_epoch" in summary:  # stopped early: say why, and whose weights the table measured
            out.print(summary["stop_reason"], soft_wrap=True, markup=False)
        if "gradient_accumulation" in summary:  # the full-batch step did not fit the memory budget as one product
            acc = summary["gradient_accumulation"]
            out.print(f"full batch accumulated over {acc['chunks']} chunks of up to {acc['examples_per_chunk']} examples "
                      "(one product would exceed the memory budget, DLTRAIN_MEMORY_BUDGET)", soft_wrap=True, markup=False)
        print_diagnosis(metrics["diagnosis"])


class CheckProgress:
    """A transient bar of cost evaluations (or another `unit`) on a terminal, redrawn at most 10x/s; nothing otherwise."""

    def __init__(self, show: bool, label: str = "gradient check", unit: str = "cost evaluations"):
        self.bar = Progress(TextColumn(label), BarColumn(), TextColumn(f"{{task.completed}}/{{task.total}} {unit}"),
                            TimeElapsedColumn(), console=out, transient=True) if show and out.is_terminal else None
        self.task = self.bar.add_task("check", total=None) if self.bar else None
        self._drawn = 0.0
        if self.bar:
            self.bar.start()

    def __call__(self, done: int, total: int):
        now = time.monotonic()
        if self.bar and (done == total or now - self._drawn > 0.1):
            self.bar.update(self.task, completed=done, total=total)
            self._drawn = now

    def close(self):
        if self.bar:
            self.bar.stop()


def gradcheck_json(name: str, o) -> dict:
    worst = o.report.worst
    return {
        "config": name, "verdict": o.verdict, "overall": o.report.overall, "threshold": o.threshold, "epsilon": o.epsilon,
        "examples": o.examples, "after_epochs": o.after_epochs, "max_per_param": o.max_per_param, "dtype": "float64",
        "worst": {"parameter": worst.name, "relative_difference": worst.relative_error, "index": list(worst.worst_index),
                  "analytic": worst.worst_analytic, "numeric": worst.worst_numeric},
        "parameters": [{"name": a.name, "relative_difference": a.relative_error, "checked": a.checked, "size": a.size,
                        "worst_index": list(a.worst_index), "analytic": a.worst_analytic, "numeric": a.worst_numeric}
                       for a in o.report.arrays],
        "kinks": [k._asdict() for k in o.kinks], "notices": o.notices, "warnings": o.warnings,
    }


VERDICT_STYLE = {"pass": "green", "suspicious": "yellow", "fail": "red"}


def print_gradcheck(name: str, o) -> None:
    from dltrain.engine.gradcheck import verdict

    for line in o.notices:
        out.print(f"note: {line}", soft_wrap=True, markup=False)
    for line in o.warnings:
        out.print(Text.assemble(("warning:", "yellow"), f" {line}"), soft_wrap=True)
    after = f", after {o.after_epochs} epochs" if o.after_epochs else ""
    table = Table(title=f"{name}: gradient check on {o.examples} examples{after}, epsilon {o.epsilon:g}",
                  caption="difference = ||g - g_num|| / (||g|| + ||g_num||), 2-norms over the checked entries")
    for col in ("parameter", "checked", "difference", "worst index", "analytic", "numeric"):
        table.add_column(col, justify="left" if col == "parameter" else "right", no_wrap=col in ("analytic", "numeric"))
    for a in o.report.arrays:
        style = VERDICT_STYLE[verdict(a.relative_error, o.threshold)]
        table.add_row(a.name, f"{a.checked}/{a.size}", f"[{style}]{a.relative_error:.2e}[/{style}]",
                      ",".join(map(str, a.worst_index)), f"{a.worst_analytic:.7g}", f"{a.worst_numeric:.7g}")
    out.print(table)
    w = o.report.worst
    out.print(f"overall relative difference {o.report.overall:.3e}; worst parameter {w.name} ({w.relative_error:.3e}), "
              f"worst entry {w.name}{list(w.worst_index)}: analytic {w.worst_analytic:.10g}, numeric {w.worst_numeric:.10g}",
              soft_wrap=True)
    reason = {"pass": f"below the threshold {o.threshold:g}",
              "suspicious": f"between the threshold {o.threshold:g} and 1e-05; look at {w.name} first",
              "fail": f"above 1e-05: backprop is most likely wrong, start with {w.name}"}[o.verdict]
    if o.warnings and o.verdict != "pass":
        reason += " (but see the warning above: the check is not valid at a kink)"
    style = VERDICT_STYLE[o.verdict]
    out.print(f"verdict: [{style}]{o.verdict}[/{style}] ({o.report.overall:.3e} is {reason})", soft_wrap=True)


def short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class SearchProgress:
    """Round headers and one line per finished trial (above a bar on a terminal); quiet prints nothing."""

    def __init__(self, total: int, metric: str, quiet: bool):
        self.metric, self.quiet, self.done, self.reused = metric, quiet, 0, 0
        self.bar = None
        if not quiet and out.is_terminal:
            self.bar = Progress(TextColumn("trials {task.completed}/{task.total}"), BarColumn(), TimeElapsedColumn(),
                                console=out, transient=True)
            self.task = self.bar.add_task("search", total=total)
            self.bar.start()

    def print(self, line):
        if not self.quiet:
            out.print(line, soft_wrap=True, markup=False)

    def round(self, number: int, space: dict, n: int):
        narrowed = f", ranges narrowed to round {number - 1}'s best" if number > 1 else ""
        table = Table(title=f"round {number}: {n} trials{narrowed}", title_justify="left")
        table.add_column("key path")
        table.add_column("distribution")
        for key, d in space.items():
            table.add_row(Text(key), Text(d.spec() if d.kind == "choice" else f"{d.kind}({d.low:.6g}, {d.high:.6g})"))
        if not self.quiet:
            out.print(table)

    def trial(self, record: dict, reused: bool):
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        if reused:
            self.reused += 1
            return
        values = "  ".join(f"{k}={short(v)}" for k, v in record["values"].items())
        if record["status"] == "completed":
            m = record["metrics"]
            self.print(f"trial {record['trial']:>3}  dev_accuracy {m['dev_accuracy']:.4f}  dev_cost {m['dev_cost']:.6f}  {values}")
        else:
            self.print(f"trial {record['trial']:>3}  {record['status']}  {values}  ({record['error'].splitlines()[0]})")

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def print_diagnosis(d: dict) -> None:
    """The bias/variance diagnosis and the course's recipe for it."""
    dead = d.get("dead_layers") or []
    dead_note = f", dead units in layer{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))}" if dead else ""
    out.print(f"[bold]diagnosis: {d['problem']}{dead_note}[/bold]")
    stand_in = " (measured on test: there is no dev set)" if d["dev_split"] == "test" else ""
    out.print(f"  human error {pct(d['human_error'])}, train error {pct(d['train_error'])}, "
              f"dev error {pct(d['dev_error'])}{stand_in}", soft_wrap=True)
    variance = "unknown (no dev or test set: set data.dev_fraction)" if d["variance"] is None else pct(d["variance"])
    out.print(f"  avoidable bias {pct(d['avoidable_bias'])}, variance {variance} (a gap of {pct(d['threshold'])} or more is high)",
              soft_wrap=True)
    for layer in d.get("dead_units") or []:
        if layer["layer"] in d["dead_layers"]:
            out.print(f"  [bold]dead {layer['activation']} units[/bold]: layer {layer['layer']} has {layer['dead']} of {layer['units']} "
                      f"units ({pct(layer['share'])}) that never activate on the training set"
                      + ("; gradient descent cannot revive them" if layer["activation"] == "relu" else ""),
                      soft_wrap=True)
    for step in d["recipe"]:
        out.print(f"  - {step}", soft_wrap=True)


def print_split(name: str, m: dict) -> None:
    out.print(f"[bold]{name}[/bold]: {m['examples']} examples, cost {m['cost']:.6f}, accuracy {m['accuracy']:.4f}")
    if "precision" in m:
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        out.print(f"  {escape(m['positive_class'])} as positive: precision {m['precision']:.4f}, recall {m['recall']:.4f}, "
                  f"F1 {m['f1']:.4f}; true positives {tp}, false positives {fp}, false negatives {fn}, true negatives {tn}",
                  soft_wrap=True)
        return
    classes = [escape(c) for c in m["per_class"]]
    matrix = Table(title=f"{name}: confusion matrix")
    matrix.add_column("true \\ predicted")
    for c in classes:
        matrix.add_column(c, justify="right")
    for c, counts in zip(classes, m["confusion_matrix"]):
        matrix.add_row(c, *map(str, counts))
    out.print(matrix)
    per_class = Table(title=f"{name}: per class")
    for col in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for c, v in m["per_class"].items():
        per_class.add_row(escape(c), f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", str(v["support"]))
    out.print(per_class)


def cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def counts_table(counts: dict[str, list[int]], classes: list[str], title: str | None = None) -> Table:
    """Examples per split and per class: a column per class, or a row per class when those columns would not fit the screen."""
    table = Table(title=title)
    cells = [("split", *counts), ("examples", *(str(sum(c)) for c in counts.values()))]
    cells += [(name, *(str(c[i]) for c in counts.values())) for i, name in enumerate(classes)]
    # Each column takes its widest cell plus rich's padding and border (3 characters).
    if sum(max(len(cell) for cell in col) + 3 for col in cells) + 1 <= out.width:
        for col in cells:
            table.add_column(col[0], justify="left" if col[0] == "split" else "right")
        for split, per_class in counts.items():
            table.add_row(split, str(sum(per_class)), *map(str, per_class))
        return table
    table.add_column("class")
    for split in counts:
        table.add_column(split, justify="right")
    for i, name in enumerate(classes):
        table.add_row(name, *(str(c[i]) for c in counts.values()))
    table.add_row("examples", *(str(sum(c)) for c in counts.values()), end_section=False, style="bold")
    return table


def print_leaderboard(outcome, metric: str, reused: int) -> None:
    """The search's best ten trials, how many were reused or failed, and where the best config is."""
    folder = outcome.out
    if reused:
        out.print(f"{reused} trials reused from an earlier run of this search")
    table = Table(title=f"leaderboard (by {metric}; all in {folder / 'leaderboard.csv'})", title_justify="left")
    keys = list(outcome.space)
    # The last part of each key path keeps the table narrow (the CSV has the full paths).
    for col in ["rank", "trial", "round", "dev_accuracy", "dev_cost", *(k.rsplit(".", 1)[-1] for k in keys)]:
        table.add_column(Text(col), justify="right")
    completed = [r for r in outcome.ranked if r["status"] == "completed"]
    for place, r in enumerate(completed[:10], start=1):
        m = r["metrics"]
        table.add_row(str(place), str(r["trial"]), str(r["round"]), f"{m['dev_accuracy']:.4f}", f"{m['dev_cost']:.6f}",
                      *(Text(short(r["values"][k])) for k in keys))
    # Piped output ends up in files and logs, where a wide table beats truncated columns.
    (out if out.is_terminal else Console(highlight=False, width=160)).print(table)
    failed = len(outcome.ranked) - len(completed)
    if failed:
        out.print(f"{failed} trials failed or diverged (see leaderboard.csv)")
    if outcome.best is not None:
        out.print(f"best: trial {outcome.best['trial']}, config in {folder / 'best.yaml'}", soft_wrap=True, markup=False)


@contextlib.contextmanager
def tracking_warnings():
    """A tracker that failed (MLflow down, a missing extra) as one `warning:` line; other warnings as Python shows them."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            caught = recorded
            warnings.simplefilter("always", TrackingWarning)
            yield
    finally:
        # Shown once the recording has ended: inside it, showwarning appends to the very list being
        # shown, which then never ends (a run whose report.html failed grew it to 8 GB).
        for w in caught:
            if issubclass(w.category, TrackingWarning):
                err.print(Text.assemble(("warning:", "yellow"), f" {w.message}"), soft_wrap=True)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def print_logged(result) -> None:
    """`dltrain log`: the TensorBoard files and the MLflow run on stderr, the MLflow run id as the last line."""
    for f in result.event_files:
        err.print(f"tensorboard: {f}", soft_wrap=True, markup=False)
    if result.mlflow_run is not None:
        what = "already logged as" if result.already else "logged as"
        nested = f" with {len(result.nested)} nested trial runs" if result.nested else ""
        err.print(f"mlflow: {result.path} {what} run {result.mlflow_run}{nested}", soft_wrap=True, markup=False)
        out.print(result.mlflow_run, soft_wrap=True, markup=False)


# Which columns of `dltrain runs` a narrow terminal keeps first.
RUNS_PRIORITY = ("run", "status", "dev_accuracy", "train_accuracy", "test_accuracy", "dataset", "layers", "optimizer",
                 "learning_rate", "epochs", "batch_size", "activation", "l2", "keep_prob", "duration_seconds")


def runs_table(rows: list[dict], columns: list[str], title: str, width: int | None = None,
               choose: bool = True) -> tuple[Table, list[str], int]:
    """The table of `dltrain runs` and the columns left out. With a width (a terminal) and `choose` (no
    --columns), the columns that fit whole, chosen by RUNS_PRIORITY; the run column always (wrapped when
    even it is too wide). Also returns the width the table needs to show every cell whole."""
    text = {c: [cell(r[c]) for r in rows] for c in columns}
    need = {c: max([len(c), *map(len, text[c])]) + 3 for c in columns}  # a space each side and a border
    shown = list(columns)
    if width is not None and choose:
        chosen, used = set(), 1  # the table's left border
        for c in sorted(columns, key=lambda c: RUNS_PRIORITY.index(c) if c in RUNS_PRIORITY else len(RUNS_PRIORITY)):
            if chosen and used + need[c] > width:
                break  # strictly by priority: a less important narrow column never displaces a wider important one
            chosen.add(c)
            used += need[c]
        shown = [c for c in columns if c in chosen]
    squeezed = width is not None and 1 + sum(need[c] for c in shown) > width
    # Columns chosen with --columns that do not fit whole: headers break at their underscores, and values
    # keep their full width when that is enough; else rich folds every column (minimum widths it could not
    # meet would crop the table instead).
    values = {c: max([len(v) for v in text[c]] + [len(part) for part in c.split("_")]) for c in shown}
    keep = squeezed and 1 + sum(values[c] + 3 for c in shown) <= width
    table = Table(title=escape(title))
    for c in shown:
        table.add_column(c.replace("_", "_\n") if squeezed else c, justify="left" if c in ("run", "status", "dataset", "layers") else "right",
                         overflow="fold", min_width=values[c] if keep else None)
    for i in range(len(rows)):
        table.add_row(*(escape(text[c][i]) for c in shown))
    return table, [c for c in columns if c not in shown], 1 + sum(need[c] for c in shown)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def escape_field(text: str) -> str:
    """A field of a tab-separated output line: control characters (tab, newline, ...) and the
    backslash written as \\xNN escapes, so each record stays one line of exactly its fields."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
