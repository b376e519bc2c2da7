"""``betaprop info``: a model file described, one table of its layers q = 0..Q (N_q, f, the
sizes of W^q and b^q) and one of its facts (loss, format, preprocessing, training, metrics)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ..engine.network import Network
from ..files.model import ModelFile
from ..files.preprocessing import Preprocessing
from .models import open_model
from .options import rich_console

__all__ = ["cmd_info"]


def cmd_info(args: argparse.Namespace) -> int:
    """``betaprop info MODEL``: a table of the layers, then one of the facts."""
    model, prep = open_model(args.model)
    console = rich_console()
    console.print(_layer_table(args.model, model.network))
    console.print(_facts_table(model, prep))
    return 0


def _layer_table(path: str, net: Network) -> Any:
    """One row per layer q: N_q, f, the sizes of W^q and b^q (and, where the network has
    them, the normalisation with its gamma^q, shift^q, the dropout rate, the residual sum)."""
    from rich.table import Table

    extra = any(net.normalized) or any(net.p) or any(net.residual)
    layers = Table(title=f"betaprop model {path}")
    columns = ["layer q", "N_q", "activation", "weights W^q", "biases b^q"]
    columns += ["normalisation", "dropout p"] if extra else []
    columns += ["residual"] if any(net.residual) else []
    for name in columns:
        layers.add_column(name, justify="right" if name != "activation" else "left")
    layers.add_row("0 (input)", str(net.sizes[0]), *["-"] * (len(columns) - 2))
    norms, skips = [None, *net.normalization, None], [False, *net.residual, False]
    for q in range(1, net.Q + 1):
        cells = [
            str(q) + (" (output)" if q == net.Q else ""),
            str(net.sizes[q]),
            net.activations[q - 1],
            str(net.sizes[q] * net.sizes[q - 1]),
            str(net.sizes[q]),
        ]
        if extra:
            cells.append(norms[q] or "-")  # batch or layer
            cells.append(f"{net.p[q]:g}" if net.p[q] else "-")
        if any(net.residual):
            cells.append("yes" if skips[q] else "-")  # y^q = y^{q-1} + f(u^q)
        layers.add_row(*cells)
    return layers


def _facts_table(model: ModelFile, prep: Preprocessing | None) -> Any:
    """Loss, dtype, file format, preprocessing, training settings and metrics of a model."""
    from rich.table import Table

    net = model.network
    facts = Table(show_header=False)
    facts.add_column("what")
    facts.add_column("value")
    facts.add_row("loss", net.loss.name)
    facts.add_row("dtype", net.dtype)
    facts.add_row("parameters", f"{net.n_params} ({net.n_weights} weights)")
    if net.init is not None:
        facts.add_row("init", net.init)
    facts.add_row("format", f"{model.header.get('format')} v{model.header.get('format_version')}")
    facts.add_row("saved by", f"betaprop {model.header.get('betaprop_version')}")
    facts.add_row("sha256", model.sha256)
    if prep is not None:
        facts.add_row("task", prep.task)
        facts.add_row("target", prep.target_name)
        if prep.classes is not None:
            facts.add_row("classes", ", ".join(prep.classes))
        facts.add_row("features", _listed(prep.feature_names))
        if prep.columns is not None:
            facts.add_row("raw columns", _listed(prep.columns))
        for what, value in prep.describe():
            facts.add_row(what, value)
    training = model.metadata.get("training")
    if isinstance(training, dict):
        keys = ("data", "optimizer", "learning_rate", "epochs_run", "batch_size", "seed")
        facts.add_row("trained", ", ".join(f"{k} {training.get(k)}" for k in keys))
        facts.add_row("finished", str(training.get("finished")))
    saved_metrics = model.metadata.get("metrics")
    if isinstance(saved_metrics, dict):
        for split, values in saved_metrics.items():
            if isinstance(values, dict):
                text = ", ".join(  # finite floats only: a crafted file may hold 10**400
                    f"{k} {float(v):.4f}"
                    for k, v in values.items()
                    if isinstance(v, float) and math.isfinite(v)
                )
                facts.add_row(f"{split} metrics", text)
    return facts


def _listed(names: list[str], most: int = 8) -> str:
    """The first ``most`` names, then how many there are in all."""
    return ", ".join(names[:most]) + (f", ... ({len(names)})" if len(names) > most else "")
