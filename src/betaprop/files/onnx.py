"""Export to ONNX: step 2 of a trained network as an ONNX graph, for onnxruntime and others.

Every layer q = 1..Q becomes two pieces of graph, the seed's step 2 with examples as rows:

    s^q = Gemm(y^{q-1}, W^q, b^q, transB=1)    # y^{q-1} (W^q)^T + b^q: W^q kept (N_q, N_{q-1})
    y^q = f_q(s^q)                             # one entry of ONNX_ACTIVATIONS

``W[q]`` goes into the file in the engine's own (N_q, N_{q-1}) layout (``transB=1`` reads it
transposed), so a weight in the ONNX file is the same bytes as in the model file. The batch
dimension is dynamic (``"n"``). Each activation is written with the operators onnxruntime
implements for float32 *and* float64, as the engine computes it (``max(s, 0.01 s)`` for leaky
ReLU, ``e^min(s, s_max)`` for exp, ``log(1 + e^-|s|) + max(s, 0)`` for softplus). For float64
GELU, which needs Φ(s) and onnxruntime has no float64 ``Erf``, Φ is built from ``Exp`` and a
Chebyshev series (``_phi_float64``), accurate to about 1e-14.

With the ``Preprocessing`` of a model trained by ``betaprop train`` the graph also holds the
standardisation (x - mean) / scale, in float64 as ``betaprop predict`` computes it, and the
way back to labels or target values, so raw feature rows give ``betaprop predict``'s answers.
For a table with categories or gaps it holds the table encoding too (``onnx_table``): one
input per raw column, imputation, indicators and one-hot columns (``ai.onnx.ml``
``LabelEncoder`` and ``OneHotEncoder``), as ``Preprocessing.encode_table`` computes them.

A batch-normalised layer is ``BatchNormalization`` with the running statistics between the
Gemm and f_q; dropout is nothing at inference. A network description with anything
``add_layers`` does not know is refused (``check_exportable``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np

from ..engine.activations import get_activation
from ..engine.network import Network
from .model import atomic_write

__all__ = [
    "to_onnx",
    "build_model",
    "add_layers",
    "check_exportable",
    "Graph",
    "OnnxExportError",
    "ONNX_ACTIVATIONS",
    "OPSET",
]

Array = np.ndarray
OPSET = 17  # Gemm, Softmax(axis), Erf, Where: all in opset 13; 17 is read by every recent runtime
IR_VERSION = 8  # the IR version that goes with opset 17 (onnxruntime reads up to its own)
ML_OPSET = 3  # ai.onnx.ml's LabelEncoder and OneHotEncoder (onnx_table): opset 17's ml opset
_OUTPUT_NAMES = ("Y", "label", "probabilities", "prediction")
# what add_layers knows: dropout does nothing at inference, init only shaped the start
_SPEC_KEYS = {"sizes", "activations", "loss", "dtype", "seed", "normalization", "dropout", "init"}
_SPEC_KEYS |= {"residual"}  # each layer operation writes its own nodes (Operation.onnx)


class OnnxExportError(ValueError):
    """A network, option or file that cannot be exported; the message names what and why."""


def _onnx() -> Any:
    try:
        import onnx
    except ModuleNotFoundError:
        raise OnnxExportError(
            "ONNX export needs the onnx package: pip install 'betaprop[onnx]'"
        ) from None
    return onnx


class Graph:
    """Nodes and initialisers of a graph under construction; every name is made unique here.

    ``add_layers`` and the activations speak only to ``node`` and ``constant``, so the same
    code writes a betaprop graph and, through a subclass, a piece of a skl2onnx pipeline.
    """

    def __init__(self, dtype: str) -> None:
        self.dtype = np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()

    def name(self, hint: str) -> str:
        """A fresh tensor name starting with ``hint``."""
        name, k = hint, 1
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._used.add(name)
        return name

    def constant(self, hint: str, value: Any, dtype: Any = None) -> str:
        """An initialiser holding ``value`` (in the graph's dtype unless ``dtype``)."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(hint)
        self.initializers.append(_onnx().numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: Sequence[str], hint: str = "", **attrs: Any) -> str:
        """Append ``op`` on ``inputs``; returns the name of its (single) output."""
        out = self.name(hint or op.lower())
        self.nodes.append(
            _onnx().helper.make_node(op, list(inputs), [out], name=self.name(f"{op}_"), **attrs)
        )
        return out

    def activation(self, name: str, s: str) -> str:
        """The nodes of activation ``name`` on s (``ONNX_ACTIVATIONS``); y's name."""
        return ONNX_ACTIVATIONS[get_activation(name).name](self, s)


# ----------------------------------------------------------------------------- activations
def _gelu(g: Graph, s: str) -> str:
    """gelu(s) = s Φ(s); float32 through Erf, float64 through ``_phi_float64``."""
    if g.dtype == np.float64:
        return g.node("Mul", [s, _phi_float64(g, s)], "y")
    # Φ(s) = ½ (1 + erf(s / √2))
    erf = g.node("Erf", [g.node("Mul", [s, g.constant("inv_sqrt2", 1.0 / math.sqrt(2.0))])])
    phi = g.node("Mul", [g.node("Add", [erf, g.constant("one", 1.0)]), g.constant("half", 0.5)])
    return g.node("Mul", [s, phi], "y")


_ERFC_K, _ERFC_A = 2.0, 28.0  # the series' centre and end (e^{-28^2} is 0 in float64)


@cache
def _erfcx_series(degree: int = 40) -> tuple[float, ...]:
    """Chebyshev coefficients of erfcx(a) = e^{a^2} erfc(a) on [0, A], in u ∈ [-1, 1].

    u = (2(A + k)/A) a/(a + k) - 1 maps [0, A] onto [-1, 1] and bunches points near 0, where
    erfcx bends; degree 40 gives relative errors about 2e-14 (scipy's erfcx as the truth).
    """
    from numpy.polynomial import chebyshev
    from scipy.special import erfcx

    k, A = _ERFC_K, _ERFC_A

    def on_u(u: Array) -> Array:
        r = (u + 1.0) * A / (2.0 * (A + k))  # r = a / (a + k)
        return erfcx(k * r / (1.0 - r))

    coefficients = chebyshev.chebinterpolate(on_u, degree)  # type: ignore[type-var]
    return tuple(float(c) for c in coefficients)


def _phi_float64(g: Graph, s: str) -> str:
    """Φ(s) = ½ erfc(z), z = -s/√2, from Exp and a Chebyshev series (no float64 Erf needed).

    erfc(z) = e^{-a^2} erfcx(a) with a = min(|z|, A) for z >= 0, and 2 - that for z < 0;
    erfcx(a) = Σ_j c_j T_j(u) by Clenshaw's recurrence b_j = c_j + 2u b_{j+1} - b_{j+2}.
    """
    k, A, c = _ERFC_K, _ERFC_A, _erfcx_series()
    z = g.node("Mul", [s, g.constant("minus_inv_sqrt2", -1.0 / math.sqrt(2.0))], "z")
    a = g.node("Min", [g.node("Abs", [z]), g.constant("erfc_end", A)], "a")
    r = g.node("Div", [a, g.node("Add", [a, g.constant("erfc_k", k)])])
    u = g.node("Mul", [r, g.constant("u_scale", 2.0 * (A + k) / A)])
    u = g.node("Sub", [u, g.constant("one", 1.0)], "u")
    two_u = g.node("Add", [u, u], "two_u")
    b_next, b = "", g.constant("c", c[-1])  # b_{j+2} ("" for 0), b_{j+1}
    for cj in reversed(c[1:-1]):  # b_j = c_j + 2u b_{j+1} - b_{j+2}
        term = g.node("Mul", [two_u, b])
        if b_next:
            term = g.node("Sub", [term, b_next])
        b_next, b = b, g.node("Add", [term, g.constant("c", cj)], "b")
    # erfcx(a) = c_0 + u b_1 - b_2
    series = g.node("Sub", [g.node("Mul", [u, b]), b_next])
    series = g.node("Add", [series, g.constant("c", c[0])], "erfcx")
    tail = g.node("Mul", [g.node("Exp", [g.node("Neg", [g.node("Mul", [a, a])])]), series])
    below = g.node("Sub", [g.constant("two", 2.0), tail])  # erfc(z) for z < 0
    negative = g.node("Less", [z, g.constant("zero", 0.0)])
    erfc = g.node("Where", [negative, below, tail], "erfc")
    return g.node("Mul", [erfc, g.constant("half", 0.5)], "phi")


def _softplus(g: Graph, s: str) -> str:
    """log(1 + e^s) = max(s, 0) + log(1 + e^{-|s|}): no overflow (the engine's logaddexp)."""
    e = g.node("Exp", [g.node("Neg", [g.node("Abs", [s])])])
    log = g.node("Log", [g.node("Add", [e, g.constant("one", 1.0)])])
    return g.node("Add", [g.node("Relu", [s]), log], "y")


def _elu(g: Graph, s: str) -> str:
    """max(s, e^{min(s, 0)} - 1), the engine's form (s for s > 0, e^s - 1 otherwise)."""
    e = g.node("Exp", [g.node("Min", [s, g.constant("zero", 0.0)])])
    return g.node("Max", [s, g.node("Sub", [e, g.constant("one", 1.0)])], "y")


def _exp(g: Graph, s: str) -> str:
    """e^{min(s, s_max)}, s_max = log(largest float) - 20, as the engine caps it."""
    cap = math.log(float(np.finfo(g.dtype).max)) - 20.0
    return g.node("Exp", [g.node("Min", [s, g.constant("s_max", cap)])], "y")


# name -> f_q as ONNX nodes; a registered activation without an entry cannot be exported
ONNX_ACTIVATIONS: dict[str, Callable[[Graph, str], str]] = {
    "identity": lambda g, s: s,
    "sigmoid": lambda g, s: g.node("Sigmoid", [s], "y"),
    "tanh": lambda g, s: g.node("Tanh", [s], "y"),
    "relu": lambda g, s: g.node("Relu", [s], "y"),
    # max(s, 0.01 s): the constant in the graph's dtype (LeakyRelu's alpha is a float32)
    "leaky_relu": lambda g, s: g.node(
        "Max", [s, g.node("Mul", [s, g.constant("slope", 0.01)])], "y"
    ),
    "elu": _elu,
    "softplus": _softplus,
    "gelu": _gelu,
    "exp": _exp,
    "softmax": lambda g, s: g.node("Softmax", [s], "y", axis=1),  # over each row's N_Q
}


# ----------------------------------------------------------------------------- the layers
def check_exportable(net: Network) -> None:
    """Raise ``OnnxExportError`` naming the first thing of ``net`` with no ONNX form."""
    if not isinstance(net, Network):
        raise OnnxExportError(f"net must be a betaprop.Network, got {type(net).__name__}")
    unknown = sorted(set(net.spec()) - _SPEC_KEYS)
    if unknown:
        raise OnnxExportError(f"ONNX export does not support {unknown[0]!r} layers yet")
    for q, name in enumerate(net.activations, start=1):
        if get_activation(name).name not in ONNX_ACTIVATIONS:
            raise OnnxExportError(
                f"activation of layer {q} must be one of {sorted(ONNX_ACTIVATIONS)} for ONNX "
                f"export, got {name!r}"
            )
    if not np.isfinite(net.params).all():
        raise OnnxExportError("net.params must be finite to be exported")


def add_layers(g: Graph, net: Network, y0: str) -> str:
    """Step 2 as ONNX nodes on y^0 = ``y0`` (n, N_0); returns the name of y^Q (n, N_Q)."""
    y = y0
    for q in range(1, net.Q + 1):  # each layer's operations in order (``Operation.onnx``)
        x = y  # s^q = y^{q-1} (W^q)^T + b^q (Gemm), [u^q], y^q = f(u^q), ...
        for op in net.ops[q]:
            x = op.onnx(g, net, q, x, y)
        y = x
    return y


# ----------------------------------------------------------------------------- the model
def _tensor_type(dtype: Any) -> int:
    return int(_onnx().helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def _outputs(g: Graph, net: Network, y: str, prep: Any) -> list[tuple[str, str, Any, list]]:
    """Name each output: (graph name, wanted name, dtype, shape); adds prep's decoding."""
    n, N_Q = "n", net.sizes[-1]
    if prep is None:
        return [(y, "Y", net.dtype, [n, N_Q])]
    if prep.task == "regression":  # t = y scale + mean, in float64 as prep.decode does
        t = g.node("Cast", [y], "y64", to=_tensor_type(np.float64)) if net.dtype != "float64" else y
        t = g.node("Mul", [t, g.constant("target_scale", prep.target_scale, np.float64)])
        t = g.node("Add", [t, g.constant("target_mean", prep.target_mean, np.float64)])
        return [(t, "prediction", np.float64, [n, 1])]
    P = y
    if N_Q == 1:  # one sigmoid output p = P(classes[1]): probabilities [1 - p, p]
        P = g.node("Concat", [g.node("Sub", [g.constant("one", 1.0), y]), y], axis=1)
    index = g.node("ArgMax", [P], "index", axis=1, keepdims=0)  # first maximum, as NumPy's
    classes = g.constant("classes", np.array(prep.classes, dtype=object), object)
    label = g.node("Gather", [classes, index], "label_")
    return [(label, "label", object, [n]), (P, "probabilities", net.dtype, [n, len(prep.classes)])]


def build_model(
    net: Network,
    *,
    preprocessing: Any = None,
    feature_names: Sequence[str] | None = None,
    input_name: str = "X",
    metadata: Mapping[str, str] | None = None,
) -> Any:
    """The ONNX ``ModelProto`` of ``net`` (see ``to_onnx``), checked by onnx's checker."""
    onnx = _onnx()
    helper = onnx.helper
    check_exportable(net)
    prep = preprocessing
    feature_names, inputs = _input_names(net, prep, feature_names, input_name)
    table = prep is not None and prep.columns is not None
    g = Graph(net.dtype)
    for name in [*inputs, *_OUTPUT_NAMES]:
        g.name(name)  # reserved: no inner tensor takes an input's or an output's name
    x = input_name
    if table:
        from .onnx_table import encode_table

        x, input_infos = encode_table(g, prep)
    if prep is not None:  # x' = (x - mean) / scale in float64, then the network's dtype
        x = g.node("Sub", [x, g.constant("mean", prep.mean, np.float64)])
        x = g.node("Div", [x, g.constant("scale", prep.scale, np.float64)], "standardised")
        if net.dtype != "float64":
            x = g.node("Cast", [x], "y0", to=_tensor_type(net.dtype))
    outputs = _outputs(g, net, add_layers(g, net, x), prep)
    for tensor, wanted, _, _ in outputs:  # rename the last node outputs to the wanted names
        _rename(g, tensor, wanted)
    if not table:
        x_type = np.float64 if prep is not None else net.dtype
        x_info = helper.make_tensor_value_info(
            input_name, _tensor_type(x_type), ["n", net.sizes[0]]
        )
        if feature_names is not None:
            x_info.doc_string = "features: " + ", ".join(feature_names)
        input_infos = [x_info]
    graph = helper.make_graph(
        g.nodes,
        "betaprop",
        input_infos,
        [helper.make_tensor_value_info(w, _tensor_type(t), shape) for _, w, t, shape in outputs],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)]
        + ([helper.make_opsetid("ai.onnx.ml", ML_OPSET)] if table else []),
        ir_version=IR_VERSION,
        producer_name="betaprop",
        producer_version=_version(),
        doc_string=f"betaprop {net!r}",
    )
    helper.set_model_props(model, _model_props(net, prep, feature_names, metadata))
    onnx.checker.check_model(model, full_check=True)
    return model


def _input_names(
    net: Network, prep: Any, feature_names: Sequence[str] | None, input_name: str
) -> tuple[Sequence[str] | None, list[str]]:
    """``build_model``'s feature names (the preprocessing's, when there is one) and the names
    of the graph's inputs (a table's columns, or ``input_name``), checked: N_0 names, no
    input named as an output."""
    if prep is not None:
        feature_names = prep.feature_names
    if feature_names is not None and len(feature_names) != net.sizes[0]:
        raise OnnxExportError(
            f"feature_names must have N_0 = {net.sizes[0]} names, got {len(feature_names)}"
        )
    if not isinstance(input_name, str) or not input_name or input_name in _OUTPUT_NAMES:
        raise OnnxExportError(
            f"input_name must be a non-empty string other than {sorted(_OUTPUT_NAMES)}, "
            f"got {input_name!r}"
        )
    table = prep is not None and prep.columns is not None
    inputs = list(prep.columns) if table else [input_name]
    clash = [name for name in inputs if name in _OUTPUT_NAMES]
    if clash:
        raise OnnxExportError(
            f"feature column {clash[0]!r} would have the name of an output of the graph "
            f"({', '.join(_OUTPUT_NAMES)}): rename the column and train again"
        )
    return feature_names, inputs


def _model_props(
    net: Network, prep: Any, feature_names: Sequence[str] | None, metadata: Mapping[str, str] | None
) -> dict[str, str]:
    """The model's metadata: the network's spec, feature names, a table's column types, the
    preprocessing and its classes, then the caller's ``metadata``."""
    props = {"betaprop_network": json.dumps(net.spec())}
    if feature_names is not None:
        props["feature_names"] = json.dumps(list(feature_names))
    if prep is not None and prep.columns is not None:
        props["columns"] = json.dumps(
            {c: "string" if c in prep.categories else "float64" for c in prep.columns}
        )
    if prep is not None:
        props["preprocessing"] = json.dumps(prep.to_dict())
        if prep.classes is not None:
            props["classes"] = json.dumps(prep.classes)
    props.update({str(k): str(v) for k, v in (metadata or {}).items()})
    return props


def _rename(g: Graph, old: str, new: str) -> None:
    """Give tensor ``old`` the name ``new`` (an Identity when ``old`` is not a node output)."""
    for node in g.nodes:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
                for later in g.nodes:  # inputs that read it, after the producing node
                    later.input[:] = [new if n == old else n for n in later.input]
                return
    g.nodes.append(_onnx().helper.make_node("Identity", [old], [new], name=g.name("Identity_")))


def to_onnx(
    net: Network,
    path: str | os.PathLike[str] | None = None,
    *,
    preprocessing: Any = None,
    feature_names: Sequence[str] | None = None,
    input_name: str = "X",
    metadata: Mapping[str, str] | None = None,
) -> Any:
    """Export ``net``'s step 2 to an ONNX file (atomically) and return the ``ModelProto``.

    Parameters
    ----------
    net : the network; every activation must be in ``ONNX_ACTIVATIONS``.
    path : the file to write (replaced atomically); None: only return the model.
    preprocessing : a ``betaprop.Preprocessing`` (what ``betaprop train`` stores): the
        graph then takes raw float64 feature rows, standardises them, and returns ``label``
        and ``probabilities`` (classification) or ``prediction`` (regression), as
        ``betaprop predict`` does. For a table (``preprocessing.columns``: categories or
        gaps) it takes one (n, 1) input per raw column, named after it (float64 with NaN
        for a missing number, the cell's text for a category, "" or NA/null/... for a
        missing one), and encodes them first; ``input_name`` is then unused.
    feature_names : N_0 names, written beside the input and into the metadata.
    input_name : the graph's input, (n, N_0) with a dynamic n; the output is ``Y`` (n, N_Q)
        in the network's dtype (without ``preprocessing``).
    metadata : extra string pairs for the model's ``metadata_props``.
    """
    model = build_model(
        net,
        preprocessing=preprocessing,
        feature_names=feature_names,
        input_name=input_name,
        metadata=metadata,
    )
    if path is not None:
        if os.path.isdir(path):
            raise OnnxExportError(f"path must be a file, got {os.fspath(path)!r} (a folder)")
        try:
            atomic_write(path, model.SerializeToString())
        except OSError as error:
            raise OnnxExportError(
                f"cannot write {os.fspath(path)!r}: {error.strerror or error}"
            ) from None
    return model


def _version() -> str:
    from .. import __version__

    return __version__
