"""An ONNX graph of a trained fully connected network: normalization, dense layers, batch norm, activations, output.

Examples are rows in the graph (X (m, n_x), the layout ONNX users expect), so layer l computes
Z = A_prev @ W.T + b, the transpose of the engine's Z = W @ A_prev + b. Every step is spelled
with the same operations in the same order as the engine's evaluation-mode forward pass, so
ONNX Runtime reproduces `dltrain predict`'s probabilities to rounding: batch norm is
(Z - mean) / sqrt(var + eps) * gamma + beta with sqrt(var + eps) computed here exactly as the
engine computes it (ONNX's BatchNormalization would take eps as a float32 attribute), and leaky
ReLU is Max(Z, slope * Z) with the slope in the graph's element type (LeakyRelu's alpha is float32).

Needs the `onnx` package (the `export` extra); commands/export.py imports this module only when asked to export.
"""

from typing import NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # Gemm, Softmax on the last axis, Max, Where: every op here is in opset 13; 17 is widely served
IR_VERSION = 8  # the IR of opset 17, so runtimes of that generation load the file
INPUT = "X"
OUTPUTS = ("probabilities", "label")
ELEMENT_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class DenseLayer(NamedTuple):
    """Layer l: W (n, n_prev), b (n, 1) or None with batch norm; gamma, beta, mean, var (n, 1) with batch norm."""

    W: np.ndarray
    b: np.ndarray | None
    activation: str  # relu, leaky_relu, tanh, sigmoid (hidden) or sigmoid, softmax (output)
    batch_norm: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # gamma, beta, mean, var


class GraphBuilder:
    """Accumulates nodes and constant tensors (initializers) with unique names."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, value) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype=self.dtype)), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output


def add_normalization(g: GraphBuilder, X: str, normalization: dict[str, np.ndarray]) -> str:
    """apply_normalization in the graph: X / 255 (scale) or (X - mean) / std (standardize), per feature."""
    if "scale" in normalization:
        return g.op("Div", [X, g.const("input_scale", normalization["scale"])], "X_normalized")
    if "mean" in normalization:
        # The engine keeps mean and std as (n_x, 1) columns; a row of examples takes them as (n_x,).
        centred = g.op("Sub", [X, g.const("input_mean", normalization["mean"].reshape(-1))], "X_centred")
        return g.op("Div", [centred, g.const("input_std", normalization["std"].reshape(-1))], "X_normalized")
    return X


def add_activation(g: GraphBuilder, Z: str, name: str, l: int, slope: float) -> str:
    """A{l} = activation(Z{l}) on rows; softmax over each row's classes."""
    out = f"A{l}"
    if name == "relu":
        return g.op("Relu", [Z], out)
    if name == "leaky_relu":
        # Max(Z, slope Z) is Z for Z > 0 and slope Z otherwise since 0 < slope < 1: the engine's np.where.
        return g.op("Max", [Z, g.op("Mul", [Z, g.const(f"slope{l}", slope)], f"slopeZ{l}")], out)
    if name == "tanh":
        return g.op("Tanh", [Z], out)
    if name == "sigmoid":
        return g.op("Sigmoid", [Z], out)
    if name == "softmax":
        return g.op("Softmax", [Z], out, axis=-1)
    raise ValueError(f"no ONNX form for activation {name!r}")


def add_layer(g: GraphBuilder, A_prev: str, layer: DenseLayer, l: int, bn_epsilon: float, slope: float) -> str:
    """Z = A_prev @ W.T (+ b); batch norm with the running statistics; the activation. -> A{l} (m, n_l)."""
    inputs = [A_prev, g.const(f"W{l}", layer.W)]
    if layer.b is not None:
        inputs.append(g.const(f"b{l}", layer.b.reshape(-1)))
    Z = g.op("Gemm", inputs, f"Z{l}", transB=1)
    if layer.batch_norm is not None:
        gamma, beta, mean, var = (np.asarray(a, dtype=g.dtype) for a in layer.batch_norm)
        # The engine's batchnorm_inference: gamma * ((Z - mean) / sqrt(var + eps)) + beta, sqrt taken in its dtype.
        std = np.sqrt(var + bn_epsilon)
        Zc = g.op("Sub", [Z, g.const(f"mean{l}", mean.reshape(-1))], f"Z{l}_centred")
        Zh = g.op("Div", [Zc, g.const(f"std{l}", std.reshape(-1))], f"Z{l}_hat")
        Zg = g.op("Mul", [g.const(f"gamma{l}", gamma.reshape(-1)), Zh], f"Z{l}_scaled")
        Z = g.op("Add", [Zg, g.const(f"beta{l}", beta.reshape(-1))], f"Z{l}_bn")
    return add_activation(g, Z, layer.activation, l, slope)


def build_model(
    layers: list[DenseLayer],
    normalization: dict[str, np.ndarray],
    dtype: np.dtype,
    metadata: dict[str, str],
    bn_epsilon: float = 1e-5,
    leaky_relu_slope: float = 0.01,
    input_doc: str = "",
    name: str = "dltrain",
    producer_version: str = "",
) -> onnx.ModelProto:
    """The network as an ONNX model: input X (m, n_x) -> probabilities (m, n_L), label (m,) int64; checked by onnx.checker.

    probabilities: P(class 1) for one sigmoid unit (m, 1), else the softmax over the classes (m, C).
    label: the predicted class index, P > 0.5 or the argmax, as `dltrain predict` decides.
    """
    g = GraphBuilder(dtype)
    elem = ELEMENT_TYPES[g.dtype]
    n_x, n_out = layers[0].W.shape[1], layers[-1].W.shape[0]
    A = add_normalization(g, INPUT, normalization)
    for l, layer in enumerate(layers, start=1):
        A = add_layer(g, A, layer, l, bn_epsilon, leaky_relu_slope)
    probs = g.op("Identity", [A], OUTPUTS[0])
    if n_out == 1:
        above = g.op("Greater", [probs, g.const("half", 0.5)], "above_half")
        g.op("Squeeze", [g.op("Cast", [above], "label_2d", to=TensorProto.INT64), _axes(g, "label_axes", [1])], OUTPUTS[1])
    else:
        g.op("ArgMax", [probs], OUTPUTS[1], axis=1, keepdims=0)
    kind = "P(class 1), one sigmoid unit" if n_out == 1 else f"softmax over the {n_out} classes"
    inputs = [helper.make_tensor_value_info(INPUT, elem, ["m", n_x], doc_string=input_doc)]
    outputs = [
        helper.make_tensor_value_info(OUTPUTS[0], elem, ["m", n_out], doc_string=f"(m, {n_out}): {kind}"),
        helper.make_tensor_value_info(OUTPUTS[1], TensorProto.INT64, ["m"], doc_string="(m,): the predicted class index "
                                      "(probability > 0.5, or the most probable class); class names in the metadata 'classes'"),
    ]
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.initializers,
                              doc_string=f"{len(layers)}-layer fully connected network trained by dltrain; examples are rows")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dltrain",
                              producer_version=producer_version, ir_version=IR_VERSION,
                              doc_string=f"input {INPUT} (m, {n_x}) {g.dtype.name}; outputs probabilities (m, {n_out}), label (m,)")
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model


def _axes(g: GraphBuilder, name: str, axes: list[int]) -> str:
    """An int64 constant (Squeeze's axes are an input from opset 13 on, always int64)."""
    g.initializers.append(numpy_helper.from_array(np.asarray(axes, dtype=np.int64), name))
    return name
