"""The one error type the library raises for user-facing failures."""


def one_line(e: Exception) -> str:
    """An exception's message on one line (library messages sometimes span several)."""
    return " ".join(str(e).split())


class DltrainError(Exception):
    """A failure the user can act on. The CLI prints the message (one line per problem) and exits
    with `exit_code`: 2 for an invalid config or command line, 1 for everything else."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code

    def _render_traceback_(self) -> list[str]:
        # IPython (Jupyter) shows these lines instead of a traceback: the same one-line messages
        # the CLI prints, for a failure the user can act on, not a bug to debug.
        return [f"{type(self).__name__}: {line}" for line in str(self).splitlines()]


class Interrupted(DltrainError):
    """Training stopped on request (Ctrl-C, SIGTERM); the message says how to resume, `run_dir` is
    the run folder. Exit code 130, the shell's code for Ctrl-C."""

    def __init__(self, message: str, run_dir=None):
        super().__init__(message, 130)
        self.run_dir = run_dir


class Diverged(DltrainError):
    """Training blew up (a non-finite or runaway cost or parameter); the message names the epoch,
    the array or cost, and a hint."""


class TrackingWarning(UserWarning):
    """A tracking backend (MLflow, TensorBoard) could not take a copy of a run; the run itself is complete.
    The CLI prints it as one `warning:` line."""
