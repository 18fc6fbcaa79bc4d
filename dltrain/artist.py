"""The figures process of `dltrain train`: forked before the first epoch, it imports matplotlib while
the loop trains and, once the model is saved, draws the run's figures and report.html (issue 21).

Importing matplotlib and the report takes 0.3 s of a planar run that trains for 0.5 s on one core;
in this process it takes the core the loop leaves idle. The process inherits the config, the data
and the network by the fork; the trained arrays it reads from model.h5, so what it draws is what the
run saved. The parent sends one JSON line per job and waits for the answer. Whatever goes wrong in
the process (a job raises, the process dies, no answer in JOB_SECONDS) makes ask() return None and
the parent do the job itself, so what the run folder gets, and every error the run reports, are
those of drawing in the training process; the warnings a job raised come back with its answer and
are raised again in the parent.

Forked only where forking is safe and cheap: Linux, and no thread but the main one (a thread
holding a lock at the fork would leave the copy of that lock held forever in the child). The
process dies with its parent (PR_SET_PDEATHSIG), even in the middle of a job: a training process
killed with SIGKILL leaves nothing behind that writes into its run folder or holds its lock.
"""

import builtins
import contextlib
import ctypes
import json
import os
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

JOB_SECONDS = 600.0  # the slowest figure (a 10,000-epoch curve, a 64-image grid) takes about a second
CLOSE_SECONDS = 1.0  # for the process to exit once its requests end (it may still be importing)


class Artist:
    """A forked process running named jobs: jobs[name](**args) -> a JSON-able dict, one at a time."""

    def __init__(self, pid: int, requests, answers):
        self.pid, self.requests, self.answers = pid, requests, answers

    @classmethod
    def start(cls, jobs: dict[str, Callable[..., dict]], warm_up: Callable[[], Callable[[], None] | None]) -> "Artist | None":
        """Fork the process; None where forking is not safe. It runs warm_up() first, then serves
        jobs; what warm_up returns, if anything, is called as the process exits (a cleanup)."""
        if not sys.platform.startswith("linux") or threading.active_count() > 1:
            return None
        parent = os.getpid()
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        # Signals are blocked across the fork: the child must not run the parent's Ctrl-C handler
        # before it has installed its own.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            pid = os.fork()
        except OSError:  # no memory or process slot for a copy: draw in-process, as before
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            for fd in (to_child, from_parent, from_child, to_parent):
                os.close(fd)
            return None
        if pid == 0:
            os.close(to_child)
            os.close(from_child)
            serve(parent, jobs, warm_up, from_parent, to_parent, blocked)  # never returns
        os.close(from_parent)
        os.close(to_parent)
        artist = cls(pid, os.fdopen(to_child, "wb"), os.fdopen(from_child, "rb"))
        try:
            # A Ctrl-C that arrived meanwhile is raised here, once the process can be ended.
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        except BaseException:
            artist.close()
            raise
        return artist

    def ask(self, job: str, **args) -> dict | None:
        """Run a job in the process; -> its answer, or None when the caller must do it itself."""
        if self.requests is None:
            return None
        answer = None
        try:
            self.requests.write((json.dumps({"job": job, "args": args}) + "\n").encode())
            self.requests.flush()
            ready, _, _ = select.select([self.answers], [], [], JOB_SECONDS)
            if not ready:  # stuck: nothing it could still draw is worth more waiting
                os.kill(self.pid, signal.SIGKILL)
            line = self.answers.readline() if ready else b""
            answer = json.loads(line) if line else None
        except Exception:  # noqa: BLE001 - gone (a broken pipe), garbage, arguments JSON cannot carry: do it here
            pass
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            self.close()  # a process that failed once is not trusted with the next job
            return None
        rewarn(answer.pop("warnings", []))
        return answer

    def close(self) -> None:
        """End the process (it exits when its requests pipe closes; killed if it has not within
        CLOSE_SECONDS, e.g. still importing when a run is interrupted at once) and reap it."""
        if self.requests is None:
            return
        for f in (self.requests, self.answers):
            with contextlib.suppress(OSError):
                f.close()
        self.requests = self.answers = None
        deadline = time.monotonic() + CLOSE_SECONDS
        while time.monotonic() < deadline:
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            time.sleep(0.005)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def serve(parent: int, jobs: dict[str, Callable[..., dict]], warm_up, requests_fd: int, answers_fd: int, blocked) -> None:
    """The child: answer each request line with {"ok": true, "warnings": [...], ...the job's answer}
    or {"ok": false, "error"}; exit when the parent closes the pipe. It never returns into the
    parent's stack, whatever happens."""
    code, cleanup = 0, None
    try:
        # Ctrl-C reaches the whole foreground process group: the parent handles it and closes the pipe.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        die_with(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        with contextlib.suppress(Exception):  # a failing warm-up shows again, in the parent, when the job is redone there
            cleanup = warm_up()
        with os.fdopen(requests_fd, "rb") as requests, os.fdopen(answers_fd, "wb") as answers:
            for line in requests:
                try:
                    request = json.loads(line)
                    result, raised = recording(jobs[request["job"]], **request["args"])
                    answer = {"ok": True, **result, "warnings": raised}
                    data = json.dumps(answer)
                except Exception as e:  # noqa: BLE001 - reported to the parent, which redoes the job and reports it
                    data = json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"})
                answers.write((data + "\n").encode())
                answers.flush()
    except BaseException:  # noqa: BLE001 - the parent sees the pipe close and does the jobs itself
        code = 1
    finally:
        if callable(cleanup):
            with contextlib.suppress(BaseException):
                cleanup()
        os._exit(code)


def die_with(parent: int) -> None:
    """Have the kernel SIGKILL this process when the one that forked it ends (Linux's PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):  # no libc to call: the closed pipe still ends it after its job
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the request took effect
        os._exit(1)


def recording(work: Callable[..., Any], **args) -> tuple[Any, list[list[str]]]:
    """work(**args)'s result and the warnings it raised, as [category name, message] pairs for rewarn in the parent."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = work(**args)
    return result, [[w.category.__name__, str(w.message)] for w in caught]


def rewarn(pairs: list) -> None:
    for name, message in pairs:
        category = getattr(builtins, str(name), None)
        warnings.warn(str(message), category if isinstance(category, type) and issubclass(category, Warning) else UserWarning,
                      stacklevel=3)


def in_fork(work: Callable[[], Any]) -> Callable[[], Any]:
    """Start work() in a forked copy of this process; -> a function that waits for its result, which
    must be JSON-able (None when the copy failed or could not start: the caller then does the work
    itself). The warnings work() raised are raised again by the waiting function.

    The figures process draws the report's curves this way while it draws the PNGs: two figures at
    once on two cores, where one process draws one after the other.
    """
    parent = os.getpid()
    try:
        readable, writable = os.pipe()
        pid = os.fork()
    except OSError:
        return lambda: None
    if pid == 0:
        code = 1
        try:
            os.close(readable)
            die_with(parent)
            result, raised = recording(work)
            data = json.dumps({"result": result, "warnings": raised}).encode()
            with os.fdopen(writable, "wb") as out:
                out.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(writable)

    def result() -> Any:
        with os.fdopen(readable, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not data:
            return None
        answer = json.loads(data)
        rewarn(answer["warnings"])
        return answer["result"]

    return result
