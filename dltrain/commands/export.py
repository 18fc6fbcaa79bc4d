"""`dltrain export`: a finished run's model as an ONNX file, to serve with ONNX Runtime or any ONNX tool."""

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dltrain import __version__
from dltrain.commands.trained import Trained, load_trained
from dltrain.errors import DltrainError
from dltrain.runs import load_run, write_output

FORMATS = ("onnx",)
EXTRA = "pip install 'dltrain[export]'"


class Exported(NamedTuple):
    out: Path  # the file written
    format: str
    element_type: str  # float32 or float64: the graph's input and output element type
    n_x: int
    outputs: tuple[str, ...]
    metadata: dict[str, str]


def config_fingerprint(tree: dict) -> str:
    """sha256 of the resolved config as canonical JSON, without the data paths, data.stream and tracking: the
    same model definition has the same fingerprint wherever its data live and however they are read (the data
    have their own fingerprint)."""
    tree = json.loads(json.dumps(tree))
    tree.pop("tracking", None)
    for key in ("dir", "path", "test_path", "stream"):
        tree.get("data", {}).pop(key, None)
    return "sha256:" + hashlib.sha256(json.dumps(tree, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def input_doc(t: Trained) -> str:
    """What the graph's input X holds, in words: how a user lays out an image or a feature row."""
    how = {"scale": "divided by 255 inside the graph", "standardize": "standardized with the training mean/std inside the graph"}
    norm = how.get(t.cfg.data.normalize, "used as given")
    if t.image_shape is not None:
        h, w, c = t.image_shape
        return (f"(m, {t.net.n_x}): one image per row, its {h}x{w}x{c} pixels 0-255 flattened in height, width, channel order "
                f"(numpy: image.reshape(1, -1) of an (h, w, c) array), {norm}")
    return f"(m, {t.net.n_x}): one example per row, raw feature values as in the training data, {norm}"


def onnx_layers(t: Trained) -> list:
    """The run's layers as onnx_graph.DenseLayer values, W as the engine holds it (n_l, n_prev): the graph transposes it in Gemm."""
    from dltrain.onnx_graph import DenseLayer

    out = []
    L = t.net.L
    for l, spec in enumerate(t.net.layers, start=1):
        activation = t.cfg.model.output_activation if l == L else t.cfg.model.hidden_activation
        bn = tuple(t.params[f"{k}{l}"] for k in ("gamma", "beta")) + tuple(t.state[f"{k}{l}"] for k in ("mean", "var")) \
            if spec.batch_norm else None
        out.append(DenseLayer(t.params[f"W{l}"], None if spec.batch_norm else t.params[f"b{l}"], activation, bn))
    return out


def export(run_dir: "str | Path", format: str = "onnx", out: "str | Path | None" = None) -> Exported:
    """Write the run's model as an ONNX file (default RUN/model.onnx); -> what was written (`dltrain export`).

    The graph takes X (m, n_x), examples as rows of raw values (pixels 0-255 for image runs, flattened
    as `predict` flattens them), applies the saved normalization, and outputs `probabilities`
    (m, n_L) and `label` (m,), in the run's dtype (float32 or float64). The metadata hold the class
    names, the config and data fingerprints and the dltrain version. Needs `pip install 'dltrain[export]'`.
    """
    if format not in FORMATS:
        raise DltrainError(f"--format {format!r} is not supported; expected one of: {', '.join(FORMATS)}", 2)
    try:
        from dltrain.onnx_graph import OUTPUTS, build_model  # imports onnx
    except ImportError:
        raise DltrainError(f"ONNX export needs the onnx package: {EXTRA}") from None
    t = load_trained(Path(getattr(run_dir, "path", run_dir)))
    out = Path(out) if out is not None else t.run_dir / "model.onnx"
    summary = load_run(t.run_dir).summary
    metadata = {
        "classes": json.dumps(t.classes),
        "config_fingerprint": config_fingerprint(t.cfg.model_dump(mode="json")),
        "data_fingerprint": str(summary.get("data_fingerprint", "")),
        "dltrain_version": __version__,
        "run": t.run_dir.name,
        "element_type": t.cfg.dtype,
        "input_normalization": t.cfg.data.normalize,
        "image_shape": json.dumps(list(t.image_shape) if t.image_shape else None),
        "output": "sigmoid P(class 1)" if t.net.layers[-1].units == 1 else "softmax",
    }
    model = build_model(onnx_layers(t), {k: np.asarray(v) for k, v in t.normalization.items()}, np.dtype(t.cfg.dtype),
                                   metadata, t.net.bn_epsilon, t.cfg.model.leaky_relu_slope, input_doc(t), t.cfg.name, __version__)
    write_output(out, model.SerializeToString())
    return Exported(out, format, t.cfg.dtype, t.net.n_x, OUTPUTS, metadata)
