"""Training-step speed of the dltrain engine against PyTorch CPU, scikit-learn and JAX (issues 9 and 21).

    python benchmarks/engine.py                      # all four workloads, table on stdout
    python benchmarks/engine.py --quick              # fewer rounds and steps: about a minute
    python benchmarks/engine.py --workloads W1,W3 --rounds 3 --steps 20 --json
    python benchmarks/engine.py --profile            # where a W4 and a W3 step's time goes, per part

A step is one optimizer update: forward, cost, backward, update. Mini-batch workloads time whole
epochs (shuffle and gathering included) and divide by the epoch's steps. Data are synthetic, of
the real shapes, generated directly in the measured dtype as rows (m, n_x): PyTorch and
scikit-learn take the rows, dltrain takes their transpose (n_x, m), a view with every example
contiguous, which is the layout `dltrain train` prepares.

- dltrain: `engine.train.train_epochs`, the loop `dltrain train` runs, in float64 and float32.
- PyTorch (only if installed; never a dltrain dependency): a plain `nn.Sequential` loop,
  `torch.set_num_threads(--threads)`, BCEWithLogits / CrossEntropy loss, `loss.item()` per step
  (dltrain also turns each step's cost into a Python float).
- JAX (only if installed): `jax.jit` of one whole training step (forward in the course layout,
  the mean cross-entropy from the logits, `jax.value_and_grad`, the same GD or course-form Adam
  update) from dltrain's initial weights, float64 through `jax_enable_x64`, XLA's CPU thread pool
  limited to --threads; the cost as a Python float per step. Before timing, each workload's first
  five float64 full-batch costs are compared with dltrain's (printed, and `jax_check` in --json):
  the two do the same work.
- scikit-learn (only if installed): `MLPClassifier(warm_start=True, max_iter=E)`, `alpha=0`,
  plain SGD (momentum 0) or Adam. One `fit` call runs E epochs of the same steps; its time divided
  by the steps is the step time, so its once-per-fit input validation is spread over those steps.

Implementations are interleaved round by round (their order rotates), and the ratio of dltrain
to the fastest peer of the same dtype is taken within each round; the table gives the median of
those per-round ratios, which cancels most of the drift on a shared machine. The floor is
6 x weights x batch FLOPs divided by the best GEMM rate measured here for that dtype (a square
1024 matmul). Peak memory is the peak resident set size (`resource.getrusage` ru_maxrss) of a
fresh process that imports the library, builds the full-size data and runs one measurement
(VmHWM from /proc/self/status; `resource.getrusage` ru_maxrss where there is no /proc).

`--profile` prints, instead of the comparison, the time of each part of a step (products with their
GFLOP/s, bias add, activations, cost, Adam, gathering, Python) for W4 and W3 (benchmarks/step_profile.py).

Two sections run first, each in fresh processes (dltrain's data loader forks, which must not happen
once JAX's threads exist): `dltrain train configs/planar.yaml` end to end against its bare training
loop, with its fixed costs (benchmarks/time_to_result.py), and the one below.
The last section times `dltrain train` on configs/cat_deep.yaml (plus a 10% dev split, so dev
evaluation at every logged epoch; the CLI's live progress bar drawn into memory; history
logging) against a bare `train_epochs` loop over the same epochs, from the first epoch's end to
the last's, alternating which goes first; end to end adds data loading, the run folder, plots
and the model file. It needs the course's cat files (datasets/ or ../shared/datasets).
"""

import argparse
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Workload(NamedTuple):
    title: str
    sizes: list[int]
    hidden: str
    optimizer: str
    learning_rate: float
    m: int
    batch_size: int | None  # None: full batch
    steps: int  # steps per measurement by default
    pixels: bool  # inputs uniform in [0, 1) like images; else standard normal


WORKLOADS = {
    "W1": Workload("cat-deep", [12288, 20, 7, 5, 1], "relu", "gd", 0.0075, 209, None, 10, True),
    "W2": Workload("signs", [12288, 25, 12, 6], "relu", "adam", 0.0001, 1080, 32, 34, True),
    "W3": Workload("planar", [2, 4, 1], "tanh", "gd", 1.2, 400, None, 300, False),
    "W4": Workload("wide", [784, 512, 512, 10], "relu", "adam", 0.001, 60000, 256, 235, True),
}
DTYPES = {"f64": np.float64, "f32": np.float32}
IMPLS = ["dltrain-f64", "dltrain-f32", "torch-f64", "torch-f32", "sklearn-f64", "sklearn-f32", "jax-f64", "jax-f32"]


def describe(w: Workload) -> str:
    output = "sigmoid" if w.sizes[-1] == 1 else "softmax"
    how = "full-batch" if w.batch_size is None else f"mini-batch {w.batch_size}"
    return f"{w.title} {w.sizes} {w.hidden}->{output}, m={w.m}, {how} {w.optimizer.upper()}"


def weights(w: Workload) -> int:
    return sum(a * b for a, b in zip(w.sizes[:-1], w.sizes[1:]))


def plan(w: Workload, steps: int) -> tuple[int, int, int]:
    """-> (epochs per measurement, examples used, optimizer steps per measurement)."""
    if w.batch_size is None:
        return steps, w.m, steps
    k = min(w.m, steps * w.batch_size)  # an epoch over the first k examples
    return 1, k, math.ceil(k / w.batch_size)


def examples_per_second(w: Workload, steps: int, ms_per_step: float) -> float:
    """Training examples processed per second: a full-batch step processes all m examples, a mini-batch
    step k / steps of them (the measurement is one epoch over the first k examples)."""
    epochs, k, n_steps = plan(w, steps)
    return epochs * k / n_steps / (ms_per_step / 1e3)


def make_data(w: Workload, dtype, seed: int = 0):
    """Rows (m, n_x) in dtype, generated directly in it so no float64 copy ever exists; labels (m,)."""
    rng = np.random.default_rng(seed)
    shape = (w.m, w.sizes[0])
    rows = rng.random(shape, dtype=dtype) if w.pixels else rng.standard_normal(shape, dtype=dtype)
    y = rng.integers(0, max(2, w.sizes[-1]), w.m)
    return rows, y


def limit_threads(threads: int):
    """Give NumPy's BLAS the same thread count as PyTorch (threadpoolctl ships with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")


def numpy_blas() -> dict | None:
    """threadpoolctl's record of the BLAS NumPy's products use ('internal_api', 'version', 'architecture', ...).

    None when threadpoolctl is not installed or lists no BLAS. The tests read it too (tests/conftest.py).
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    # scipy can load its own OpenBLAS beside NumPy's BLAS (MKL, say); NumPy's wheels keep theirs in numpy.libs.
    mine = [lib for lib in blas if "numpy" in lib["filepath"]] or [lib for lib in blas if "scipy" not in lib["filepath"]]
    return mine[0] if mine else None


def blas_description() -> str:
    """NumPy's BLAS, its version and the kernels it chose, e.g. 'openblas 0.3.31, Haswell kernels'.

    OpenBLAS picks its kernels for the CPU at load time unless OPENBLAS_CORETYPE names them; the
    choice sets the GEMM rate (AVX2 against AVX-512), so tables from two machines compare only with it.
    """
    lib, forced = numpy_blas(), os.environ.get("OPENBLAS_CORETYPE")
    if lib is None:
        return "unknown (threadpoolctl not installed, or no BLAS listed)"
    kernels = f", {lib['architecture']} kernels" if lib.get("architecture") else ""
    return f"{lib['internal_api']} {lib['version']}{kernels}" + (f" (OPENBLAS_CORETYPE={forced})" if forced else "")


# ---- the implementations: each returns run(epochs, k), training in place on the first k examples


def dltrain_runner(w: Workload, dtype, rows, y):
    from dltrain.engine.activations import ACTIVATIONS
    from dltrain.engine.initializers import INITIALIZERS
    from dltrain.engine.losses import LOSSES
    from dltrain.engine.model import LayerSpec, Network, init_params
    from dltrain.engine.optimizers import OPTIMIZERS
    from dltrain.engine.train import train_epochs

    output = "sigmoid" if w.sizes[-1] == 1 else "softmax"
    specs = [LayerSpec(n, ACTIVATIONS[w.hidden]) for n in w.sizes[1:-1]] + [LayerSpec(w.sizes[-1], ACTIVATIONS[output])]
    net = Network(w.sizes[0], tuple(specs), LOSSES[output])
    rng = np.random.default_rng(1)
    init = INITIALIZERS["he" if w.hidden == "relu" else "xavier"]
    params, state = init_params(net, init, rng, 1.0, dtype)
    optimizer = OPTIMIZERS[w.optimizer]()
    X = rows.T  # (n_x, m), column-major: no copy
    Y = y.reshape(1, -1).astype(dtype) if output == "sigmoid" else np.eye(w.sizes[-1], dtype=dtype)[:, y]

    def run(epochs, k):
        permutation = (lambda epoch: rng.permutation(k)) if w.batch_size else None
        for _ in train_epochs(X[:, :k], Y[:, :k], params, state, net, optimizer, lambda epoch: w.learning_rate,
                              epochs, w.batch_size, permutation):
            pass

    return run


def torch_runner(w: Workload, dtype, rows, y):
    import torch

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[w.hidden]
    layers = []
    for a, b in zip(w.sizes[:-1], w.sizes[1:]):
        layers += [torch.nn.Linear(a, b), act()]
    model = torch.nn.Sequential(*layers[:-1]).to(tdtype)
    X = torch.from_numpy(rows)
    if w.sizes[-1] == 1:
        loss_fn, Y = torch.nn.BCEWithLogitsLoss(), torch.from_numpy(y.astype(dtype)).reshape(-1, 1)
    else:
        loss_fn, Y = torch.nn.CrossEntropyLoss(), torch.from_numpy(y)
    opt_class = torch.optim.SGD if w.optimizer == "gd" else torch.optim.Adam
    optimizer = opt_class(model.parameters(), lr=w.learning_rate)
    generator = torch.Generator().manual_seed(1)

    def run(epochs, k):
        for _ in range(epochs):
            batches = [slice(0, k)] if w.batch_size is None else torch.randperm(k, generator=generator).split(w.batch_size)
            total = 0.0
            for idx in batches:
                xb, yb = X[idx], Y[idx]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(yb)

    return run


def sklearn_runner(w: Workload, dtype, rows, y):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    solver = {"gd": dict(solver="sgd", momentum=0.0, nesterovs_momentum=False), "adam": dict(solver="adam")}[w.optimizer]
    clf = MLPClassifier(hidden_layer_sizes=tuple(w.sizes[1:-1]), activation=w.hidden, alpha=0.0,
                        batch_size=w.batch_size or w.m, learning_rate_init=w.learning_rate, shuffle=w.batch_size is not None,
                        tol=0.0, n_iter_no_change=10**9, warm_start=True, random_state=1, **solver)

    def run(epochs, k):
        clf.set_params(max_iter=epochs, batch_size=min(w.batch_size or k, k))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(rows[:k], y[:k])

    return run


def initial_params(w: Workload, dtype) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W1, b1), ...]: the weights dltrain_runner starts from (same generator, same initializer)."""
    from dltrain.engine.initializers import INITIALIZERS

    rng = np.random.default_rng(1)
    init = INITIALIZERS["he" if w.hidden == "relu" else "xavier"]
    return [(init(n, n_prev, rng, 1.0).astype(dtype), np.zeros((n, 1), dtype=dtype)) for n_prev, n in zip(w.sizes[:-1], w.sizes[1:])]


def jax_step(w: Workload, gather: bool = False):
    """One whole training step, jax.jit-compiled: forward in the course layout (Z = W @ A_prev + b),
    the mean cross-entropy from the logits, jax.grad, and the same GD or Adam update as dltrain's
    (course form: W -= lr * v_hat / (sqrt(s_hat) + eps)).

    -> step(params, opt, X rows, Y, t, lr) -> (params, opt, cost); with gather, step(params, opt, X rows,
    Y, idx, t, lr) takes the mini-batch's example indices and gathers them inside the compiled step, so
    the training set stays on the device and only the indices cross over. params and opt are donated:
    XLA updates their buffers in place instead of allocating new ones each step."""
    import jax
    import jax.numpy as jnp

    act = {"relu": jax.nn.relu, "tanh": jnp.tanh}[w.hidden]

    def cost(params, rows, Y):
        A = rows.T  # (n_x, m)
        for W, b in params[:-1]:
            A = act(W @ A + b)
        W, b = params[-1]
        Z = W @ A + b
        if Z.shape[0] == 1:  # sigmoid + binary cross-entropy, stably from the logits
            return jnp.mean(jnp.logaddexp(0.0, Z) - Y * Z)
        return jnp.mean(jax.nn.logsumexp(Z, axis=0) - jnp.sum(Y * Z, axis=0))

    def step(params, opt, rows, Y, t, lr):
        value, grads = jax.value_and_grad(cost)(params, rows, Y)
        if w.optimizer == "gd":
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), opt, value
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        v = jax.tree_util.tree_map(lambda v, g: beta1 * v + (1 - beta1) * g, opt[0], grads)
        s = jax.tree_util.tree_map(lambda s, g: beta2 * s + (1 - beta2) * g * g, opt[1], grads)
        new = jax.tree_util.tree_map(
            lambda p, v, s: p - lr * (v / (1 - beta1**t)) / (jnp.sqrt(s / (1 - beta2**t)) + eps), params, v, s)
        return new, (v, s), value

    def gathered(params, opt, rows, Y, idx, t, lr):
        return step(params, opt, rows[idx], Y[:, idx], t, lr)

    return jax.jit(gathered if gather else step, donate_argnums=(0, 1))


def jax_runner(w: Workload, dtype, rows, y):
    """The JAX peer made as fast as we could honestly make it (issue 21): training data on the device once,
    params and optimizer state donated, the mini-batch gathered inside the compiled step or by NumPy and
    copied over, whichever this machine runs faster (timed on the first batch with a zero learning rate:
    GD leaves the weights as they are; Adam's moments see six extra gradients, a negligible start), the step count
    and learning rate as device scalars (no retracing: one compilation per batch shape), and the cost
    turned into a Python float every step like dltrain's loop does."""
    import jax
    import jax.numpy as jnp

    params = [tuple(jnp.asarray(a) for a in layer) for layer in initial_params(w, dtype)]
    opt = (jax.tree_util.tree_map(jnp.zeros_like, params), jax.tree_util.tree_map(jnp.zeros_like, params))
    Y_rows = y.reshape(1, -1).astype(dtype) if w.sizes[-1] == 1 else np.eye(w.sizes[-1], dtype=dtype)[:, y]
    X_dev, Y_dev = jnp.asarray(rows), jnp.asarray(Y_rows)
    full, gathered = jax_step(w), jax_step(w, gather=True)
    rng, t = np.random.default_rng(1), 0
    lr = jnp.asarray(w.learning_rate, dtype=dtype)
    views = {}  # k -> the first k examples on the device (full batch)
    on_device = None  # mini-batches gathered inside the compiled step, or by NumPy and copied over: the faster, measured once

    def choose(idx):
        nonlocal params, opt, on_device
        times = {True: [], False: []}
        for _ in range(6):
            for device in (True, False):
                started = time.perf_counter()
                if device:
                    params, opt, value = gathered(params, opt, X_dev, Y_dev, idx, jnp.asarray(1, dtype=dtype), jnp.asarray(0, dtype=dtype))
                else:
                    params, opt, value = full(params, opt, rows[idx], Y_rows[:, idx], jnp.asarray(1, dtype=dtype), jnp.asarray(0, dtype=dtype))
                float(value)
                times[device].append(time.perf_counter() - started)
        on_device = statistics.median(times[True][1:]) <= statistics.median(times[False][1:])

    def run(epochs, k):
        nonlocal params, opt, t
        if w.batch_size is None and k not in views:
            views[k] = (X_dev[:k], Y_dev[:, :k])
        for _ in range(epochs):
            if w.batch_size is None:
                t += 1
                params, opt, value = full(params, opt, *views[k], jnp.asarray(t, dtype=dtype), lr)
                float(value)  # the cost as a Python float each step, as dltrain's loop does
                continue
            for idx in np.array_split(rng.permutation(k), range(w.batch_size, k, w.batch_size)):
                t += 1
                if on_device is None:
                    choose(idx)
                if on_device:
                    params, opt, value = gathered(params, opt, X_dev, Y_dev, idx, jnp.asarray(t, dtype=dtype), lr)
                else:
                    params, opt, value = full(params, opt, rows[idx], Y_rows[:, idx], jnp.asarray(t, dtype=dtype), lr)
                float(value)

    return run


def jax_matches_dltrain(w: Workload, steps: int = 5) -> float:
    """Largest relative difference of the float64 costs of JAX and dltrain over the first steps
    (full batch on up to 256 examples, same initial weights): the two time the same work."""
    from dltrain.engine.activations import ACTIVATIONS
    from dltrain.engine.losses import LOSSES
    from dltrain.engine.model import LayerSpec, Network
    from dltrain.engine.optimizers import OPTIMIZERS
    from dltrain.engine.train import train_epochs

    rows, y = make_data(w, np.float64)
    k = min(w.m, 256)
    rows, y = rows[:k], y[:k]
    output = "sigmoid" if w.sizes[-1] == 1 else "softmax"
    Y = y.reshape(1, -1).astype(np.float64) if output == "sigmoid" else np.eye(w.sizes[-1])[:, y]
    specs = [LayerSpec(n, ACTIVATIONS[w.hidden]) for n in w.sizes[1:-1]] + [LayerSpec(w.sizes[-1], ACTIVATIONS[output])]
    net = Network(w.sizes[0], tuple(specs), LOSSES[output])
    start = initial_params(w, np.float64)
    params = {f"{n}{l}": a.copy() for l, layer in enumerate(start, 1) for n, a in zip("Wb", layer)}
    ours = [r.cost for r in train_epochs(np.asfortranarray(rows.T), Y, params, {}, net, OPTIMIZERS[w.optimizer](),
                                         lambda epoch: w.learning_rate, steps, None, None)]
    import jax.numpy as jnp

    jparams = [tuple(jnp.asarray(a) for a in layer) for layer in start]
    opt = tuple([tuple(jnp.zeros_like(a) for a in layer) for layer in jparams] for _ in range(2))  # donated: no shared buffers
    step, theirs = jax_step(w), []
    for t in range(1, steps + 1):
        jparams, opt, value = step(jparams, opt, rows, Y, np.float64(t), np.float64(w.learning_rate))
        theirs.append(float(value))
    return max(abs(a - b) / abs(a) for a, b in zip(ours, theirs))


RUNNERS = {"dltrain": dltrain_runner, "torch": torch_runner, "sklearn": sklearn_runner, "jax": jax_runner}


def available(impl: str) -> bool:
    lib = impl.split("-")[0]
    if lib == "dltrain":
        return True
    try:
        __import__({"torch": "torch", "sklearn": "sklearn.neural_network", "jax": "jax"}[lib])
    except ImportError:
        return False
    return True


def build(impl: str, w: Workload, data, threads: int):
    lib, dt = impl.split("-")
    if lib == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64; float32 ones stay float32
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
    rows, y = data[dt]
    return RUNNERS[lib](w, DTYPES[dt], rows, y)


def gemm_gflops(dtype, n: int = 1024, repeats: int = 3) -> float:
    """Best rate of a square n x n matmul: the BLAS speed the floor is computed from."""
    a = np.random.default_rng(0).random((n, n), dtype=dtype)
    best = math.inf
    a @ a
    for _ in range(repeats):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


# ---- memory: one fresh process per (workload, implementation)


def memory_child(wname: str, impl: str, steps: int, threads: int) -> None:
    limiter = limit_threads(threads)  # noqa: F841 (kept alive for the process)
    w = WORKLOADS[wname]
    dt = impl.split("-")[1]
    data = {dt: make_data(w, DTYPES[dt])}
    run = build(impl, w, data, threads)
    epochs, k, _ = plan(w, steps)
    run(epochs, k)
    print(json.dumps({"peak_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set: VmHWM on Linux, else ru_maxrss.

    ru_maxrss survives exec on Linux, so a child forked from a large parent would report the
    parent's size; VmHWM belongs to the new process image only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def peak_memory(wname: str, impl: str, steps: int, threads: int) -> float | None:
    proc = subprocess.run([sys.executable, __file__, "--memory-child", wname, impl, "--steps", str(steps),
                           "--threads", str(threads)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  (peak memory of {impl} on {wname} failed: {proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]


# ---- the timed rounds


# Seconds of rest before each timed run. The previous implementation's worker threads (OpenBLAS's,
# PyTorch's OpenMP team, XLA's Eigen pool) keep spinning on the cores for up to a few hundred
# milliseconds after its last step; without the pause the next one shares the cores with them.
SETTLE = 0.3


def bench_workload(wname: str, impls: list[str], rounds: int, steps: int, threads: int, rates: dict) -> dict:
    w = WORKLOADS[wname]
    dts = sorted({i.split("-")[1] for i in impls})
    data = {dt: make_data(w, DTYPES[dt]) for dt in dts}
    epochs, k, n_steps = plan(w, steps)
    runners = {}
    for impl in impls:
        runners[impl] = build(impl, w, data, threads)
        runners[impl](1, min(k, 4 * (w.batch_size or k)))  # warm-up: lazy state, allocator, thread pools
    times = {impl: [] for impl in impls}
    ratios = {impl: [] for impl in impls}
    for r in range(rounds):
        for dt in dts:  # the floor's GEMM rate, re-measured as the machine's load changes
            rates[dt] = max(rates.get(dt, 0.0), gemm_gflops(DTYPES[dt]))
        order = impls[r % len(impls):] + impls[: r % len(impls)]
        this_round = {}
        for impl in order:
            time.sleep(SETTLE)
            t = time.perf_counter()
            runners[impl](epochs, k)
            this_round[impl] = (time.perf_counter() - t) / n_steps
            times[impl].append(this_round[impl])
        for impl in impls:
            dt = impl.split("-")[1]
            peers = [this_round[p] for p in impls if not p.startswith("dltrain") and p.endswith(dt)]
            if peers:
                ratios[impl].append(this_round[impl] / min(peers))
    batch = w.batch_size or w.m
    result = {}
    for impl in impls:
        ms = statistics.median(times[impl]) * 1e3
        result[impl] = {"median_ms": ms, "examples_per_s": examples_per_second(w, steps, ms)}
        if ratios[impl]:
            result[impl]["ratio_to_peer"] = statistics.median(ratios[impl])
    for dt in dts:
        result[f"floor_{dt}_ms"] = 6 * weights(w) * batch / (rates[dt] * 1e9) * 1e3
    for impl in impls:
        result[impl]["ratio_to_floor"] = result[impl]["median_ms"] / result[f"floor_{impl.split('-')[1]}_ms"]
    return result


# ---- dltrain train against the bare loop


def course_data_dir() -> Path | None:
    for folder in (REPO / "datasets", REPO.parent / "shared" / "datasets"):
        if (folder / "train_catvnoncat.h5").is_file():
            return folder
    return None


def train_overhead(epochs: int, rounds: int) -> dict | None:
    """Median over rounds of (loop time of dltrain.train with the live bar) / (bare train_epochs loop) - 1."""
    from rich.console import Console

    from dltrain.commands.build import build_network, build_optimizer, build_schedule, init_rng, prepare_data
    from dltrain.commands.train import train
    from dltrain.config import load_config
    from dltrain.engine.initializers import INITIALIZERS
    from dltrain.engine.model import init_params
    from dltrain.engine.train import train_epochs
    from dltrain.progress import TerminalProgress

    data_dir = course_data_dir()
    if data_dir is None:
        return None
    cfg = load_config(REPO / "configs" / "cat_deep.yaml", [f"data.dir={data_dir}", f"training.epochs={epochs}", "data.dev_fraction=0.1"])

    def full() -> tuple[float, float]:
        stamps = []
        progress = TerminalProgress(epochs, Console(file=io.StringIO(), force_terminal=True, width=100))  # drawn into memory

        def hook(r, row):
            progress(r, row)
            stamps.append(time.perf_counter())

        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg, run_dir=Path(tmp) / "run", progress=hook)
        progress.close()
        return stamps[-1] - stamps[0], time.perf_counter() - started

    def bare() -> tuple[float, float]:
        started = time.perf_counter()
        data = prepare_data(cfg)
        net = build_network(cfg, data.n_x)
        rng = init_rng(cfg)
        params, state = init_params(net, INITIALIZERS[cfg.init.scheme], rng, cfg.init.scale, np.dtype(cfg.dtype))
        stamps = []
        for _ in train_epochs(data.X["train"], data.Y["train"], params, state, net, build_optimizer(cfg),
                              build_schedule(cfg), epochs):
            stamps.append(time.perf_counter())
        return stamps[-1] - stamps[0], time.perf_counter() - started

    loop_ratios, total_ratios = [], []
    for r in range(rounds):
        if r % 2:
            (fl, ft), (bl, bt) = full(), bare()
        else:
            (bl, bt), (fl, ft) = bare(), full()
        loop_ratios.append(fl / bl)
        total_ratios.append(ft / bt)
    return {"config": "configs/cat_deep.yaml", "epochs": epochs, "rounds": rounds,
            "loop_overhead": statistics.median(loop_ratios) - 1, "end_to_end_overhead": statistics.median(total_ratios) - 1}


def train_overhead_subprocess(epochs: int, rounds: int, threads: int) -> dict | None:
    """train_overhead in a fresh process (no JAX threads alive when the data loader forks)."""
    proc = subprocess.run([sys.executable, __file__, "--train-overhead-child", str(epochs), str(rounds), "--threads", str(threads)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  (dltrain train vs the bare loop failed: {proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def profile(args) -> int:
    """--profile: where a step's time goes, per part, for each workload and dtype (benchmarks/step_profile.py)."""
    from benchmarks.step_profile import print_profile, profile_workload

    limiter = limit_threads(args.threads)  # noqa: F841 (kept alive for the run)
    wnames = [w.strip() for w in (args.workloads if args.workloads_given else "W4,W3").split(",") if w.strip()]
    rates = {}
    out = {}
    for wname in wnames:
        w = WORKLOADS[wname]
        steps = args.steps or (min(w.steps, 40) if args.quick else w.steps)
        for dt in ("f32", "f64"):
            res = profile_workload(w, DTYPES[dt], steps, args.rounds or (2 if args.quick else 3))
            rates[dt] = max(rates.get(dt, 0.0), res["gemm_gflops"])
            out[f"{wname}-{dt}"] = res
            print_profile(wname, w, dt, res, emit=lambda text: print(text, file=sys.stderr if args.json else sys.stdout))
    print(f"\nBLAS: {blas_description()}; threads {args.threads}; load average {os.getloadavg()[0]:.2f}",
          file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"profile": out, "blas": blas_description()}, indent=2))
    return 0


# ---- report


TARGETS = [  # (workload, implementation, kind, bound) from issue 21
    *[(wl, f"dltrain-{dt}", "peer", 0.8) for dt in ("f32", "f64") for wl in WORKLOADS],
    ("W4", "dltrain-f32", "floor", 1.4),
    ("W1", "dltrain-f32", "floor", 1.6),
]
TRAIN_OVERHEAD_MAX = 0.05  # dltrain train's loop over the bare train_epochs loop
END_TO_END_MARGIN_S = 0.4  # dltrain train configs/planar.yaml end to end over its training loop


def target_lines(results: dict) -> list[str]:
    lines = []
    for wl, impl, kind, bound in TARGETS:
        entry = results.get(wl, {}).get(impl)
        if entry is None:
            continue
        if kind == "peer":
            value, what = entry.get("ratio_to_peer"), "x fastest of torch/sklearn/jax"
        else:
            value, what = entry["ratio_to_floor"], "x floor"
        if value is not None:
            lines.append(f"{wl} {impl} {value:.2f} {what} (target <= {bound}): {'met' if value <= bound else 'MISSED'}")
    w4 = results.get("W4", {})
    for dt, size in (("f32", 4), ("f64", 8)):  # issue 9's memory bound, kept
        peak = w4.get(f"dltrain-{dt}", {}).get("peak_mb")
        if peak is not None:
            bound = 2 * WORKLOADS["W4"].m * WORKLOADS["W4"].sizes[0] * size / 2**20 + 200
            lines.append(f"W4 dltrain-{dt} peak {peak:.0f} MB (target <= {bound:.0f} MB): {'met' if peak <= bound else 'MISSED'}")
    return lines


def print_table(results: dict, overhead: dict | None, rates: dict, file=None, time_to_result: dict | None = None) -> None:
    def emit(text: str) -> None:
        print(text, file=file or sys.stdout)

    emit(f"BLAS: {blas_description()}; GEMM rate: " + ", ".join(f"{dt} {rates[dt]:.1f} GFLOP/s" for dt in sorted(rates))
         + f"; load average {os.getloadavg()[0]:.2f}")
    for wname, res in results.items():
        floors = ", ".join(f"{dt} {res[f'floor_{dt}_ms']:.3f} ms" for dt in DTYPES if f"floor_{dt}_ms" in res)
        emit(f"\n{wname} {describe(WORKLOADS[wname])}  (floor: {floors})")
        emit(f"  {'implementation':<13} {'ms/step':>9} {'examples/s':>11} {'vs peer':>8} {'vs floor':>9} {'peak MB':>8}")
        for impl in IMPLS:
            e = res.get(impl)
            if e is None:
                continue
            peer = f"{e['ratio_to_peer']:.2f}x" if "ratio_to_peer" in e else "-"
            peak = f"{e['peak_mb']:.0f}" if "peak_mb" in e else "-"
            emit(f"  {impl:<13} {e['median_ms']:>9.3f} {e['examples_per_s']:>11.0f} {peer:>8} {e['ratio_to_floor']:>8.2f}x {peak:>8}")
    if overhead is not None:
        emit(f"\ndltrain train vs bare engine loop on {overhead['config']} ({overhead['epochs']} epochs, dev split, "
              f"live progress bar, history logging): loop {overhead['loop_overhead']:+.1%}, "
              f"end to end {overhead['end_to_end_overhead']:+.1%} (data loading, plots, model file included)")
    if time_to_result is not None:
        from benchmarks.time_to_result import time_to_result_text

        emit("\n" + time_to_result_text(time_to_result))
    lines = target_lines(results)
    if overhead is not None:
        lines.append(f"dltrain train loop overhead {overhead['loop_overhead']:+.1%} (target <= +{TRAIN_OVERHEAD_MAX:.0%}): "
                     f"{'met' if overhead['loop_overhead'] <= TRAIN_OVERHEAD_MAX else 'MISSED'}")
    if time_to_result is not None:
        over = time_to_result["end_to_end_s"] - time_to_result["loop_s"]
        lines.append(f"dltrain train configs/planar.yaml end to end = loop + {over:.2f} s (target <= loop + "
                     f"{END_TO_END_MARGIN_S} s): {'met' if over <= END_TO_END_MARGIN_S else 'MISSED'}")
    if lines:
        emit("\nTargets (issue 21):")
        for line in lines:
            emit(f"  {line}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default=None, help="comma-separated subset of W1,W2,W3,W4")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per workload (default 5, --quick 2)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per measurement (default per workload)")
    p.add_argument("--threads", type=int, default=2, help="threads for PyTorch and NumPy's BLAS (default 2)")
    p.add_argument("--quick", action="store_true", help="2 rounds, at most 40 steps, 100 epochs of dltrain train")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-train-overhead", action="store_true", help="skip dltrain train vs the bare loop")
    p.add_argument("--no-time-to-result", action="store_true", help="skip dltrain train configs/planar.yaml end to end vs its loop")
    p.add_argument("--profile", action="store_true",
                   help="only profile a step of each workload (default W4,W3), float32 and float64: where the time goes")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--memory-child", nargs=2, metavar=("WORKLOAD", "IMPL"), help=argparse.SUPPRESS)
    p.add_argument("--train-overhead-child", nargs=2, type=int, metavar=("EPOCHS", "ROUNDS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workloads_given = args.workloads is not None
    args.workloads = args.workloads or ",".join(WORKLOADS)
    if args.memory_child:
        memory_child(*args.memory_child, args.steps, args.threads)
        return 0
    if args.train_overhead_child:
        limiter = limit_threads(args.threads)  # noqa: F841 (kept alive for the process)
        print(json.dumps(train_overhead(*args.train_overhead_child)))
        return 0
    wnames = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in wnames if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    if args.profile:
        return profile(args)
    rounds = args.rounds or (2 if args.quick else 5)
    # Before JAX loads: XLA's CPU thread pool takes every core unless told otherwise.
    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={args.threads}")
    impls = [i for i in IMPLS if available(i)]
    busy = os.getloadavg()[0]
    if busy > 0.5:  # other jobs on the cores: multi-threaded BLAS steps collapse first (docs/performance.md)
        print(f"warning: load average {busy:.2f} before starting; with other jobs on the cores OpenBLAS's threads wait for "
              "each other and dltrain's times (not JAX's) grow up to 10x: measure on idle cores", file=sys.stderr)
    limiter = limit_threads(args.threads)  # noqa: F841 (kept alive for the run)
    rates, results, jax_check = {}, {}, {}
    overhead = time_to_result = None
    # Both run in fresh processes first: dltrain.data.limits forks, which must not happen with JAX's threads alive.
    if not args.no_train_overhead:
        print("dltrain train vs the bare loop on configs/cat_deep.yaml", file=sys.stderr)
        overhead = train_overhead_subprocess(100 if args.quick else 200, 2 if args.quick else 5, args.threads)
        if overhead is None:
            print("  (skipped: the course's cat files are not in datasets/ or ../shared/datasets)", file=sys.stderr)
    if not args.no_time_to_result:
        from benchmarks.time_to_result import time_to_result as measure_time_to_result

        print("dltrain train configs/planar.yaml end to end vs its loop", file=sys.stderr)
        time_to_result = measure_time_to_result(2 if args.quick else 3)
    for wname in wnames:
        w = WORKLOADS[wname]
        if "jax-f64" in impls:
            import jax

            jax.config.update("jax_enable_x64", True)
            jax_check[wname] = jax_matches_dltrain(w)
            print(f"{wname}: JAX's first 5 float64 costs differ from dltrain's by at most {jax_check[wname]:.1e} (relative)",
                  file=sys.stderr)
        steps = args.steps or (min(w.steps, 40) if args.quick else w.steps)
        print(f"{wname}: {rounds} rounds of {plan(w, steps)[2]} steps x {len(impls)} implementations", file=sys.stderr)
        started = time.perf_counter()
        results[wname] = bench_workload(wname, impls, rounds, steps, args.threads, rates)
        if not args.no_memory:
            for impl in impls:
                peak = peak_memory(wname, impl, steps, args.threads)
                if peak is not None:
                    results[wname][impl]["peak_mb"] = peak
        done = ", ".join(f"{i} {e['median_ms']:.3g} ms" + (f" ({e['ratio_to_peer']:.2f}x)" if "ratio_to_peer" in e else "")
                         for i, e in results[wname].items() if isinstance(e, dict))
        print(f"  {time.perf_counter() - started:.0f} s: {done}", file=sys.stderr)  # progress on long runs
    if args.json:  # JSON on stdout, the table on stderr for whoever watches
        out = {"workloads": results, "blas": blas_description(), "gemm_gflops": rates}
        if jax_check:
            out["jax_check"] = jax_check
        if overhead is not None:
            out["train_overhead"] = overhead
        if time_to_result is not None:
            out["time_to_result"] = time_to_result
        print_table(results, overhead, rates, file=sys.stderr, time_to_result=time_to_result)
        print(json.dumps(out, indent=2))
    else:
        print_table(results, overhead, rates, time_to_result=time_to_result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
