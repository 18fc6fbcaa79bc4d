"""benchmarks/engine.py: its JSON is read by scripts outside the repo (issue 9). No timing is asserted here."""

import importlib.util
import json
import subprocess
import sys

from tests.conftest import REPO


def test_json_has_the_issues_shape_for_the_peers_installed():
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "engine.py"), "--workloads", "W3", "--rounds", "1", "--steps", "5",
         "--no-memory", "--no-train-overhead", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert list(out["workloads"]) == ["W3"]
    w3 = out["workloads"]["W3"]
    peers = [lib for lib, module in (("torch", "torch"), ("sklearn", "sklearn"), ("jax", "jax")) if importlib.util.find_spec(module)]
    expected = {f"{lib}-{dt}" for lib in ["dltrain", *peers] for dt in ("f64", "f32")} | {"floor_f32_ms", "floor_f64_ms"}
    assert set(w3) == expected
    for impl in expected - {"floor_f32_ms", "floor_f64_ms"}:
        assert w3[impl]["median_ms"] > 0 and w3[impl]["examples_per_s"] > 0
    assert w3["floor_f32_ms"] > 0 and w3["floor_f64_ms"] > 0
    assert set(out["gemm_gflops"]) == {"f32", "f64"} and out["blas"]
    assert "W3 planar" in res.stderr  # the table goes to stderr with --json
    if "jax" in peers:  # JAX is timed on the same work: its first costs equal dltrain's
        assert 0 <= out["jax_check"]["W3"] < 1e-12
    if peers:
        assert w3["dltrain-f64"]["ratio_to_peer"] > 0 and "Targets (issue 9)" in res.stderr


def test_examples_per_second_counts_every_example_of_a_full_batch_step():
    from benchmarks.engine import WORKLOADS, examples_per_second

    # W1: full batch of 209 examples, 10 steps per measurement, 4.89 ms a step -> 42,740 examples/s (not 4,274)
    assert round(examples_per_second(WORKLOADS["W1"], 10, 4.89)) == round(209 / 4.89e-3)
    # W2: mini-batches of 32, one epoch of 1080 examples in 34 steps
    assert examples_per_second(WORKLOADS["W2"], 34, 1.0) == 1080 / 34 / 1e-3
