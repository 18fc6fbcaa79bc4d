"""What a person sees while a run trains, and how Ctrl-C stops it.

`epoch_display(epochs)` picks one live display for where the code runs: a rich bar on a terminal
(logged rows printed above it), one in-place line in a Jupyter notebook, plain lines at logged
epochs otherwise (a pipe, a log file). `stop_on_signals()` turns the first Ctrl-C or SIGTERM into
"stop after this epoch". The CLI and the Python API (`dltrain.train(..., progress=True)`) use the
same two, so a notebook sees what a terminal sees.
"""

import html
import signal
import sys
import threading
import time
from contextlib import contextmanager

REDRAW_SECONDS = 0.1  # at most 10 redraws a second: more only takes time from the BLAS threads


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def row_line(epoch: int, row: dict) -> str:
    """A logged history row as one line: 'epoch 1000  cost 0.262  lr 1.2  dev_cost ...'."""
    dev = f"  dev_cost {row['dev_cost']:.6f}  dev_accuracy {row['dev_accuracy']:.4f}" if row.get("dev_cost") is not None else ""
    return f"epoch {epoch:>6}  cost {row['cost']:.6f}  lr {row['learning_rate']:.6g}{dev}"


def status_text(r, dev: tuple[float, float] | None) -> str:
    """The latest figures shown beside the bar: cost, and dev cost and accuracy once known."""
    text = f"cost {r.cost:.6f}"
    if dev is not None:
        text += f"  dev_cost {dev[0]:.4f}  dev_acc {dev[1]:.4f}"
    return text


class TerminalProgress:
    """A rich bar with ETA, the latest cost and dev metrics; logged rows print above it as they come."""

    def __init__(self, epochs: int, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = console or Console(highlight=False)
        self.bar = Progress(
            TextColumn("epoch {task.completed}/{task.total}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),  # empty until the first epoch ends: no 'cost nan'
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            # Redrawn by __call__ as epochs end (at most 10x/s); the background redraw only keeps the
            # clocks ticking, and at rich's default 10x/s its thread took a core's time slices from the
            # BLAS threads of a 2-core machine.
            refresh_per_second=1,
        )
        self.task = self.bar.add_task("train", total=epochs, status="")
        self.dev = None
        self.pending: list[str] = []
        self._drawn = 0.0
        self.bar.start()

    def __call__(self, r, row):
        if row is not None:
            self.pending.append(row_line(r.epoch, row))
            if row.get("dev_cost") is not None:
                self.dev = (row["dev_cost"], row["dev_accuracy"])
        now = time.monotonic()
        if now - self._drawn > REDRAW_SECONDS or r.epoch + 1 == self.bar.tasks[0].total:
            self._flush()
            self.bar.update(self.task, completed=r.epoch + 1, status=status_text(r, self.dev), refresh=True)
            self._drawn = now

    def _flush(self):
        if self.pending:
            self.bar.console.print("\n".join(self.pending), soft_wrap=True, markup=False, highlight=False)
            self.pending = []

    def close(self):
        if self.bar is not None:
            self._flush()
            self.bar.stop()
            self.bar = None


class NotebookProgress:
    """One line in a Jupyter output cell, replaced in place (IPython's display_id): bar, epoch, cost,
    dev metrics, elapsed and remaining time; no widget library needed."""

    def __init__(self, epochs: int):
        from IPython.display import HTML, display

        self.HTML, self.epochs, self.started, self._drawn = HTML, epochs, time.monotonic(), 0.0
        self.first = None
        self.dev = None
        self.text = ""
        self.handle = display(self.HTML(self._html(0)), display_id=True)

    def _html(self, done: int) -> str:
        elapsed = time.monotonic() - self.started
        rate = (done - self.first) / elapsed if self.first is not None and done > self.first and elapsed > 0 else None
        eta = (self.epochs - done) / rate if rate else None
        return (f'<div style="font-family: monospace"><progress value="{done}" max="{self.epochs}" style="width: 30%"></progress> '
                f"epoch {done}/{self.epochs}  {html.escape(self.text)}  elapsed {_clock(elapsed)}  eta {_clock(eta)}</div>")

    def __call__(self, r, row):
        if self.first is None:
            self.first = r.epoch
        if row is not None and row.get("dev_cost") is not None:
            self.dev = (row["dev_cost"], row["dev_accuracy"])
        now = time.monotonic()
        if now - self._drawn > REDRAW_SECONDS or r.epoch + 1 == self.epochs:
            self.text = status_text(r, self.dev)
            self.handle.update(self.HTML(self._html(r.epoch + 1)))
            self._drawn = now

    def close(self):
        pass


class LineProgress:
    """Plain lines at logged epochs: for pipes and log files, where a redrawn bar would be noise."""

    def __init__(self, stream=None):
        self.stream = stream
        self.writable = True

    def __call__(self, r, row):
        if row is not None and self.writable:
            try:
                print(row_line(r.epoch, row), file=self.stream or sys.stdout, flush=True)
            except OSError:
                # Progress is a courtesy: a log on a full disk stops the lines, not the training. The
                # command's last lines then fail to print and the CLI says so (cli.main).
                self.writable = False

    def close(self):
        pass


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel attached), not a terminal IPython."""
    shell = sys.modules.get("IPython")
    shell = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def epoch_display(epochs: int):
    """The live display for where the code runs: notebook, terminal, or plain lines."""
    if in_notebook():
        return NotebookProgress(epochs)
    from rich.console import Console

    console = Console(highlight=False)
    return TerminalProgress(epochs, console) if console.is_terminal else LineProgress()


@contextmanager
def stop_on_signals():
    """Yield an event that SIGINT (Ctrl-C, a notebook's interrupt) and SIGTERM set, so training
    stops cleanly after the current epoch; a second signal aborts at once. The previous handlers
    are restored on exit. Off the main thread (where handlers cannot be set) the event is never set."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(f"{signal.Signals(signum).name}: stopping after this epoch (again to abort at once)", file=sys.stderr, flush=True)

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def watching(epochs: int, progress, interrupt: threading.Event | None):
    """(display, interrupt) for one training call. progress: True for epoch_display, False or None
    for none, or a callable(result, row) of the caller's. interrupt: None installs stop_on_signals."""
    display = epoch_display(epochs) if progress is True else (progress or None)
    try:
        if interrupt is None:
            with stop_on_signals() as event:
                yield display, event
        else:
            yield display, interrupt
    finally:
        if display is not None and hasattr(display, "close"):
            display.close()
