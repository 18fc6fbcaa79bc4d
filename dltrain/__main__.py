"""`python -m dltrain` and the `dltrain` command."""

import atexit
import os
import sys
import threading


def entry():
    # Commands import NumPy, matplotlib and h5py when they start (a second or more): Ctrl-C in that
    # time should exit like any other interrupt, not print an import traceback.
    try:
        from dltrain.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    try:
        main()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    fast_exit(code)


def fast_exit(code) -> None:
    """Exit with SystemExit's code without tearing the interpreter down.

    Freeing NumPy's, matplotlib's, h5py's and pydantic's modules object by object takes 0.15-0.2 s
    after every command (benchmarks/time_to_result.py), a tenth of a planar run. By now the command
    has closed every file it wrote; the atexit handlers still run and stdout/stderr are flushed (an
    output that cannot be written exits 120, as Python's own exit does; a reader that stopped early
    is no error). With another thread alive (a library's non-daemon worker), or a code Python would
    print, the usual exit joins and reports as it always does.
    """
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)  # CPython's; elsewhere, the usual exit
    if run_exitfuncs is None or threading.active_count() > 1 or not (code is None or isinstance(code, int)):
        sys.exit(code)
    run_exitfuncs()
    code = code or 0
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # pythonw, or a closed descriptor at start-up
            continue
        try:
            stream.flush()
        except BrokenPipeError:  # `dltrain ... | head`: the reader has all it wanted
            pass
        except (OSError, ValueError):  # a full disk under a redirect: what Python's own exit reports
            code = code or 120
    os._exit(code)


if __name__ == "__main__":
    entry()
