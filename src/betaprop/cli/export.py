"""``betaprop export MODEL --onnx OUT.onnx``: a model file as an ONNX graph (docs/onnx.md).

For a model written by ``betaprop train`` the graph takes raw feature rows (float64, in the
model's feature order, named in the input's description; for a table with categories or
gaps, one input per raw column) and holds the table encoding and the standardisation, so
onnxruntime gives what ``betaprop predict`` prints: ``label`` and ``probabilities``, or
``prediction``. A model saved from Python without preprocessing exports step 2 alone
(input ``X``, output ``Y``). Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .options import EXIT_USER_ERROR, refuse_overwriting


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``export`` command to the ``betaprop`` command's subparsers."""
    export = subparsers.add_parser(
        "export",
        help="write a model file as ONNX (onnxruntime and other runtimes)",
        description="Export a model file to ONNX. For a model from 'betaprop train' the "
        "graph includes the table encoding, the standardisation and the class labels, so raw "
        "CSV rows give the same predictions as 'betaprop predict'. Needs: pip install "
        "'betaprop[onnx]'.",
    )
    export.add_argument("model", help="model file (model.safetensors of a run folder)")
    export.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write")
    export.add_argument("--quiet", action="store_true", help="print nothing")
    export.set_defaults(handler=run)
    return export


def run(args: argparse.Namespace) -> int:
    """Export ``args.model`` to ``args.onnx``; returns the exit code."""
    from ..files.model import ModelFileError, read_model
    from ..files.onnx import OnnxExportError, to_onnx
    from ..files.preprocessing import Preprocessing

    refuse_overwriting([("--onnx", args.onnx)], [("the model file", args.model)])
    try:
        if os.path.isdir(args.onnx):
            raise OnnxExportError(f"--onnx must be a file, got {args.onnx!r} (a folder)")
        model = read_model(args.model)
        fields = model.metadata.get("preprocessing")
        prep = None
        if fields is not None:
            try:
                prep = Preprocessing.from_dict(fields)
            except ValueError as error:
                raise ModelFileError(f"{args.model}: {error}") from None
            if len(prep.feature_names) != model.network.sizes[0]:
                raise ModelFileError(
                    f"{args.model}: the preprocessing has {len(prep.feature_names)} features "
                    f"for N_0 = {model.network.sizes[0]} inputs"
                )
        onnx_model = to_onnx(
            model.network,
            args.onnx,
            preprocessing=prep,
            metadata={"betaprop_model_sha256": model.sha256},
        )
    except (ModelFileError, OnnxExportError) as error:
        print(f"betaprop: error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not args.quiet:
        inputs = ", ".join(_describe(v) for v in onnx_model.graph.input)
        outputs = ", ".join(_describe(v) for v in onnx_model.graph.output)
        print(f"wrote {args.onnx}: {inputs} -> {outputs}")
    return 0


def _describe(value: Any) -> str:
    """'name (type, n x N)' of a graph input or output."""
    from onnx import helper

    tensor = value.type.tensor_type
    dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
    kind = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    kind_name = "string" if kind.kind == "O" else str(kind)
    return f"{value.name} ({kind_name}, {' x '.join(dims)})"
