"""Where a training step's time goes (issue 21): `python benchmarks/engine.py --profile [--workloads W4,W3]`.

One mini-batch (or full-batch) step of a workload is taken apart into the engine calls it is made
of, each timed on its own with `time.perf_counter` over many steps (median per part):

- gather: the shuffled mini-batch's rows copied out of the examples-as-rows training array;
- one line per matrix product (forward Z, backward dW and dA_prev) with its shape and its rate in
  GFLOP/s, beside the square-GEMM rate the benchmark's floor is computed from;
- bias add, each activation forward and backward (ReLU, tanh, softmax, sigmoid), the cost, the
  output delta (AL - Y) / m, the bias gradients db, the optimizer update (Adam or GD);
- Python: the step as `train_epochs` runs it minus the sum of the parts, i.e. the loop's own
  work and per-call dispatch between them.

The parts call the engine's own functions (dense_forward without its bias, the activations, the
loss, the optimizer) on the same arrays in the same order as `train_epochs`; the three backward
products are those of `layers.dense_backward` (dW, db and `input_gradient`). The step's own time is measured by
`train_epochs` on the same network, alternating with the instrumented steps, so both see the same
load. Only dense networks without batch norm or dropout (the benchmark's four workloads).
"""

import statistics
import time

import numpy as np


def _timer(record: dict):
    def timed(name: str, fn, *args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        record.setdefault(name, []).append(time.perf_counter() - t)
        return out

    return timed


def _instrumented_step(rows_X, rows_Y, cols, params, net, optimizer, lr, grads, record, flops):
    """One step of train_epochs' inner loop, each part timed into record[name] (seconds per call)."""
    from dltrain.engine.layers import dense_forward, input_gradient

    timed = _timer(record)
    if cols is None:
        Xb, Yb = rows_X.T, rows_Y.T
    else:
        Xb, Yb = timed("gather", lambda: (rows_X[cols].T, rows_Y[cols].T))
    m = Yb.shape[1]
    A, caches = Xb, []
    for l, spec in enumerate(net.layers, start=1):
        W, b = params[f"W{l}"], params[f"b{l}"]
        name = f"product L{l} forward  Z = W{l} A{l - 1}"
        Z, _ = timed(name, dense_forward, A, W, None)
        flops.setdefault(name, (2 * W.shape[0] * W.shape[1] * m, f"({W.shape[0]}x{W.shape[1]}) @ ({W.shape[1]}x{m})"))
        timed("bias add", np.add, Z, b, out=Z)
        act = spec.activation.forward.__name__
        caches.append((A, W, Z))
        A = timed(f"{act}", spec.activation.forward, Z)
        caches[-1] = (caches[-1][0], W, A)  # backward needs A_prev, W and this layer's output A
    AL, ZL = A, Z
    cost = timed("cost", net.loss, ZL, AL, Yb) / m

    def delta():
        dZ = AL - Yb
        dZ /= m
        return dZ

    dZ = timed("output delta (AL - Y) / m", delta)
    new, dA = {}, None
    for l in range(net.L, 0, -1):
        spec = net.layers[l - 1]
        A_prev, W, A = caches[l - 1]
        if l < net.L:
            dZ = timed(f"{spec.activation.forward.__name__} backward", spec.activation.backward, dA, A)
        name = f"product L{l} backward dW{l} = dZ{l} A{l - 1}^T"
        new[f"W{l}"] = timed(name, np.matmul, dZ, A_prev.T, out=None if grads is None else grads[f"W{l}"])
        flops.setdefault(name, (2 * W.shape[0] * W.shape[1] * m, f"({W.shape[0]}x{m}) @ ({m}x{W.shape[1]})"))
        new[f"b{l}"] = timed("db = sum(dZ)", dZ.sum, axis=1, keepdims=True)
        if l > 1:
            name = f"product L{l} backward dA{l - 1} = W{l}^T dZ{l}"
            dA = timed(name, input_gradient, W, dZ)
            flops.setdefault(name, (2 * W.shape[0] * W.shape[1] * m, f"({W.shape[1]}x{W.shape[0]}) @ ({W.shape[0]}x{m})"))
    update = f"{type(optimizer).__name__} update"
    timed(update, optimizer.step, params, new, lr)
    return new, cost


def profile_workload(w, dtype, steps: int, rounds: int = 3) -> dict:
    """-> {"step_us", "parts": [(name, us, share, gflops or None, shape or "")], "gemm_gflops"}."""
    from benchmarks.engine import gemm_gflops, make_data
    from dltrain.engine.activations import ACTIVATIONS
    from dltrain.engine.initializers import INITIALIZERS
    from dltrain.engine.losses import LOSSES
    from dltrain.engine.model import LayerSpec, Network, init_params
    from dltrain.engine.optimizers import OPTIMIZERS
    from dltrain.engine.train import train_epochs

    rows, y = make_data(w, dtype)
    output = "sigmoid" if w.sizes[-1] == 1 else "softmax"
    specs = [LayerSpec(n, ACTIVATIONS[w.hidden]) for n in w.sizes[1:-1]] + [LayerSpec(w.sizes[-1], ACTIVATIONS[output])]
    net = Network(w.sizes[0], tuple(specs), LOSSES[output])
    rng = np.random.default_rng(1)
    init = INITIALIZERS["he" if w.hidden == "relu" else "xavier"]
    Y = y.reshape(1, -1).astype(dtype) if output == "sigmoid" else np.eye(w.sizes[-1], dtype=dtype)[:, y]
    rows_Y = np.ascontiguousarray(Y.T)
    batch = w.batch_size or w.m
    k = min(w.m, steps * batch)
    lr = w.learning_rate

    def fresh():
        params, state = init_params(net, init, np.random.default_rng(1), 1.0, dtype)
        return params, state, OPTIMIZERS[w.optimizer]()

    p_real, s_real, opt_real = fresh()
    p_inst, _, opt_inst = fresh()
    record, flops, real = {}, {}, []
    grads = None
    X = rows.T
    # warm-up, not timed: numba's compilation, the wide products' and Adam's one-time measurements, thread pools
    # (one epoch of the measured examples, so every batch shape and Adam's first 12 updates are seen)
    for _ in train_epochs(X[:, :k], Y[:, :k], p_real, s_real, net, opt_real, lambda e: lr, 1 if w.batch_size else 3,
                          w.batch_size, (lambda epoch: rng.permutation(k)) if w.batch_size else None):
        pass
    for _ in range(rounds):
        # the real step: train_epochs over one epoch of the same examples
        perm = (lambda epoch: rng.permutation(k)) if w.batch_size else None
        n_steps = -(-k // batch) if w.batch_size else steps
        epochs = 1 if w.batch_size else steps
        t = time.perf_counter()
        for _ in train_epochs(X[:, :k], Y[:, :k], p_real, s_real, net, opt_real, lambda e: lr, epochs, w.batch_size, perm):
            pass
        real.append((time.perf_counter() - t) / n_steps)
        # the same steps, instrumented
        order = rng.permutation(k)
        for i in range(n_steps):
            cols = None if w.batch_size is None else order[i * batch : (i + 1) * batch]
            grads, _ = _instrumented_step(rows[:k], rows_Y[:k], cols, p_inst, net, opt_inst, lr, grads, record, flops)
    steps_timed = len(record[f"{type(opt_inst).__name__} update"])
    step_us = statistics.median(real) * 1e6
    parts = []
    for name, times in record.items():
        per_call = statistics.median(times)  # a mini-batch epoch's smaller last batch does not move the median
        calls = len(times) / steps_timed  # e.g. 'bias add' runs once per layer
        us = per_call * calls * 1e6
        gf, shape = (flops[name][0] / per_call / 1e9, flops[name][1]) if name in flops else (None, "")
        parts.append((name, us, us / step_us, gf, shape))
    accounted = sum(p[1] for p in parts)
    parts.append(("Python: loop and dispatch (step - parts)", step_us - accounted, (step_us - accounted) / step_us, None, ""))
    from dltrain.engine import products

    ways = {f"({k[0][0]}x{k[0][1]}) @ ({k[1][0]}x{k[1][1]})": "transposed" if v else "W @ A_prev" for k, v in products.choices().items()
            if k[3] == np.dtype(dtype) and k[0] == (w.sizes[1], w.sizes[0])}
    from dltrain.engine import kernels

    shapes = {(n, n_prev) for n_prev, n in zip(w.sizes[:-1], w.sizes[1:])}
    ways["Adam threads"] = ", ".join(f"{k[0][0]}x{k[0][1]}: {2 if v else 1}" for k, v in kernels.split_choices().items()
                                     if k[1] == np.dtype(dtype) and k[0] in shapes) or "one (no array large enough)"
    return {"step_us": step_us, "parts": parts, "gemm_gflops": gemm_gflops(dtype), "wide_products": ways,
            "shape_floor_us": shape_floor_us(w, dtype, batch)}


def _best(product, repeats: int) -> float:
    product()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        product()
        times.append(time.perf_counter() - t)
    return min(times)


def shape_floor_us(w, dtype, m: int, repeats: int = 5) -> float:
    """The products of one step (forward, dW, and dA_prev but the input's), each timed alone at its best of
    `repeats`: the floor of a step on this BLAS with the shapes the step multiplies, beside the benchmark's
    floor at the square-GEMM rate (is that rate fair for these shapes?)."""
    rng = np.random.default_rng(0)
    total = 0.0
    for l, (n_prev, n) in enumerate(zip(w.sizes[:-1], w.sizes[1:]), start=1):
        W = rng.standard_normal((n, n_prev)).astype(dtype)
        A_prev = rng.random((n_prev, m), dtype=dtype)
        if l == 1:
            A_prev = np.asfortranarray(A_prev)  # a gathered mini-batch: examples contiguous
        dZ = rng.standard_normal((n, m)).astype(dtype)
        dW = np.empty_like(W)
        forward = min(_best(lambda: W @ A_prev, repeats), _best(lambda: (A_prev.T @ W.T).T, repeats))  # noqa: B023
        total += forward + _best(lambda: np.matmul(dZ, A_prev.T, out=dW), repeats)  # noqa: B023
        if l > 1:
            total += _best(lambda: W.T @ dZ, repeats)  # noqa: B023
    return total * 1e6


def print_profile(wname: str, w, dt: str, result: dict, emit=print) -> None:
    step = result["step_us"]
    products = sum(p[1] for p in result["parts"] if p[0].startswith("product"))
    batch = w.batch_size or w.m
    square = 6 * sum(a * b for a, b in zip(w.sizes[:-1], w.sizes[1:])) * batch / (result["gemm_gflops"] * 1e3)
    emit(f"\nProfile {wname} {dt}: step {step:.1f} us measured by train_epochs; products {products:.1f} us "
         f"({products / step:.0%}); floor at the square-GEMM rate ({result['gemm_gflops']:.1f} GFLOP/s) {square:.1f} us; "
         f"the step's own product shapes, each alone at its best: {result['shape_floor_us']:.1f} us")
    emit(f"  {'part':<44} {'us/step':>9} {'% step':>7} {'GFLOP/s':>8}  shape")
    for name, us, share, gf, shape in result["parts"]:
        rate = f"{gf:8.1f}" if gf is not None else f"{'':8}"
        emit(f"  {name:<44} {us:9.1f} {share:7.1%} {rate}  {shape}")
    ways = dict(result.get("wide_products", {}))
    adam = ways.pop("Adam threads", None)
    if ways:
        emit("  wide forward products, the way measured fastest (engine/products.py): "
             + ", ".join(f"{shape} {way}" for shape, way in ways.items()))
    if adam:
        emit(f"  Adam's threads per weight array, as measured in the loop (engine/kernels.py): {adam}")
