"""benchmarks/engine.py: its JSON is read by scripts outside the repo (issue 9). No timing is asserted here."""

import importlib.util
import json
import subprocess
import sys

from tests.conftest import REPO


def test_json_has_the_issues_shape_for_the_peers_installed():
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "engine.py"), "--workloads", "W3", "--rounds", "1", "--steps", "5",
         "--no-memory", "--no-train-overhead", "--no-time-to-result", "--json"],
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
        assert w3["dltrain-f64"]["ratio_to_peer"] > 0 and "Targets (issue 21)" in res.stderr


def test_examples_per_second_counts_every_example_of_a_full_batch_step():
    from benchmarks.engine import WORKLOADS, examples_per_second

    # W1: full batch of 209 examples, 10 steps per measurement, 4.89 ms a step -> 42,740 examples/s (not 4,274)
    assert round(examples_per_second(WORKLOADS["W1"], 10, 4.89)) == round(209 / 4.89e-3)
    # W2: mini-batches of 32, one epoch of 1080 examples in 34 steps
    assert examples_per_second(WORKLOADS["W2"], 34, 1.0) == 1080 / 34 / 1e-3


def test_profile_accounts_for_the_whole_step():
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "engine.py"), "--profile", "--workloads", "W3", "--rounds", "1", "--steps", "5",
         "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)["profile"]
    assert set(out) == {"W3-f32", "W3-f64"}
    for entry in out.values():
        names = [part[0] for part in entry["parts"]]
        # the three products of each layer, the activations, the cost, the update and the remainder
        assert sum(name.startswith("product") for name in names) == 5  # 2 forward, 2 dW, 1 dA (no input gradient)
        assert {"tanh", "sigmoid", "tanh backward", "cost", "GD update"} <= set(names)
        assert names[-1].startswith("Python")
        assert abs(sum(part[1] for part in entry["parts"]) - entry["step_us"]) < 1e-6 * entry["step_us"]
    assert "Profile W3 f32" in res.stderr


def test_time_to_result_reports_the_fixed_costs():
    from benchmarks.time_to_result import _child, time_to_result_text

    phases = _child("--phases-child")  # one instrumented `dltrain train configs/planar.yaml`
    assert set(phases) == {"cli_imports_s", "train_imports_s", "until_first_epoch_s", "loop_s", "figures_s", "report_s",
                           "figures_process", "rest_after_loop_s"}
    assert phases["loop_s"] > 0 and phases["figures_s"] > 0 and phases["report_s"] > 0
    assert phases["figures_process"] is (sys.platform.startswith("linux"))  # the CLI's figures drawn by its forked process
    text = time_to_result_text({"config": "configs/planar.yaml", "rounds": 3, "end_to_end_s": 1.0, "loop_s": 0.5, "phases": phases})
    assert "end to end 1.00 s = loop 0.50 s + 0.50 s" in text and f"figures {phases['figures_s']:.2f} s" in text
