"""skl2onnx converters for betaprop's MLPClassifier and MLPRegressor.

After ``register()`` (idempotent), skl2onnx converts a betaprop estimator, alone or inside a
scikit-learn ``Pipeline``, as it converts scikit-learn's own MLP:

- MLPClassifier: outputs ``label`` (int64 for numeric classes, string otherwise) and
  ``probabilities`` (n, n_classes), with skl2onnx's ``zipmap`` option as for any classifier;
  a single logistic output p becomes the two columns [1 - p, p].
- MLPRegressor: output ``variable`` (n, n_outputs).

The layers are written by ``betaprop.files.onnx.add_layers`` (one Gemm with transB=1 and the
activation per layer), so the graph is the one ``betaprop.to_onnx`` writes, in the
estimator's dtype; the input is cast to it and the outputs back to the input's type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..files.onnx import Graph, OnnxExportError, add_layers, check_exportable
from . import MLPClassifier, MLPRegressor

__all__ = ["register"]


class _SklearnGraph(Graph):
    """``Graph`` writing into skl2onnx's scope (unique names) and container (nodes)."""

    def __init__(self, dtype: str, scope: Any, container: Any) -> None:
        super().__init__(dtype)
        self.scope, self.container = scope, container

    def name(self, hint: str) -> str:
        return str(self.scope.get_unique_variable_name(hint))

    def constant(self, hint: str, value: Any, dtype: Any = None) -> str:
        from onnx import TensorProto, numpy_helper

        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(hint)
        if array.dtype == object:  # strings: a list of bytes (skl2onnx keeps no raw string data)
            content = [str(v).encode("utf-8") for v in array.ravel()]
            self.container.add_initializer(name, TensorProto.STRING, list(array.shape), content)
        else:
            tensor = numpy_helper.from_array(array, name)
            self.container.add_initializer(name, tensor.data_type, list(array.shape), tensor)
        return name

    def node(self, op: str, inputs: Any, hint: str = "", **attrs: Any) -> str:
        out = self.name(hint or op.lower())
        self.container.add_node(
            op, list(inputs), out, name=self.scope.get_unique_operator_name(op), **attrs
        )
        return out

    def cast(self, tensor: str, proto_type: int, to: str = "") -> str:
        """``tensor`` as ``proto_type`` (written to ``to`` if given): Cast, or Identity."""
        out = to or self.name("cast")
        same = proto_type == _proto_type(self.dtype)
        op, attrs = ("Identity", {}) if same else ("Cast", {"to": proto_type})
        self.container.add_node(
            op, [tensor], out, name=self.scope.get_unique_operator_name(op), **attrs
        )
        return out


def _proto_type(dtype: Any) -> int:
    from onnx import helper

    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def _network_of(operator: Any, container: Any) -> tuple[Any, _SklearnGraph, str]:
    """The estimator's network, a graph in its dtype, and its input cast to that dtype."""
    net = operator.raw_operator.to_network()
    check_exportable(net)
    g = _SklearnGraph(net.dtype, operator.scope_inst, container)
    x = g.node("Cast", [operator.inputs[0].full_name], "y0", to=_proto_type(net.dtype))
    return net, g, x


def _convert_classifier(scope: Any, operator: Any, container: Any) -> None:
    """label, probabilities of a betaprop MLPClassifier, as skl2onnx's MLPClassifier gives."""
    from skl2onnx.common.data_types import guess_proto_type

    estimator = operator.raw_operator
    if getattr(estimator._label_binarizer, "y_type_", "") == "multilabel-indicator":
        raise OnnxExportError("ONNX export of a multilabel MLPClassifier is not supported")
    net, g, x = _network_of(operator, container)
    P = add_layers(g, net, x)
    if net.sizes[-1] == 1:  # one logistic output p = P(classes_[1]): [1 - p, p]
        P = g.node("Concat", [g.node("Sub", [g.constant("one", 1.0), P]), P], axis=1)
    label, probabilities = operator.outputs[0].full_name, operator.outputs[1].full_name
    g.cast(P, guess_proto_type(operator.outputs[1].type), to=probabilities)
    index = g.node("ArgMax", [P], "index", axis=1, keepdims=0)  # ties: the first, as NumPy
    classes = np.asarray(estimator.classes_)
    if classes.dtype.kind in "biuf":  # numeric classes: int64 labels, as skl2onnx gives
        table = g.constant("classes", classes.astype(np.int64), np.int64)
    else:
        table = g.constant("classes", classes.astype(str).astype(object), object)
    g.container.add_node(
        "Gather", [table, index], label, name=scope.get_unique_operator_name("Gather")
    )


def _convert_regressor(scope: Any, operator: Any, container: Any) -> None:
    """variable (n, n_outputs) of a betaprop MLPRegressor."""
    from skl2onnx.common.data_types import guess_proto_type

    net, g, x = _network_of(operator, container)
    y = add_layers(g, net, x)
    g.cast(y, guess_proto_type(operator.outputs[0].type), to=operator.outputs[0].full_name)


def register() -> None:
    """Register the converters with skl2onnx (safe to call more than once)."""
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )
    except ModuleNotFoundError:
        raise OnnxExportError(
            "converting betaprop estimators needs skl2onnx: pip install 'betaprop[onnx]'"
        ) from None
    update_registered_converter(
        MLPClassifier,
        "BetapropMLPClassifier",
        calculate_linear_classifier_output_shapes,
        _convert_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )
    update_registered_converter(
        MLPRegressor,
        "BetapropMLPRegressor",
        calculate_linear_regressor_output_shapes,
        _convert_regressor,
    )
