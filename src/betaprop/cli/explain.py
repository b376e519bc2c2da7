"""``betaprop trace`` and ``gradcheck``: looking inside backpropagation, on a small random
network or on a saved model."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from ..engine.activations import ACTIVATIONS
from ..engine.losses import LOSSES
from ..engine.network import Network
from ..files.model import read_model
from .memory import network_bytes, require_memory
from .models import model_data, open_model, require_prep, write_text
from .options import (
    EXIT_FAILED,
    UserError,
    add_layer_options,
    float_list,
    hidden_activations,
    int_at_least,
    layer_settings,
    layer_sizes,
    option_error,
    positive_float,
    refuse_constant_output,
    refuse_overwriting,
    rich_console,
)

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """The subcommands trace and gradcheck."""
    trace = commands.add_parser(
        "trace",
        help="steps 2-6 for one example, with the formulas and the numbers",
        description="Print steps 2-6 of backpropagation for one example through a tiny "
        "network (default 2-3-2 sigmoid, squared error) or a saved model: the forward pass, "
        "the local errors, the gradients and one gradient step (learning rate --learning-rate).",
    )
    _add_small_network_options(
        trace, sizes=[2, 3, 2], activation="sigmoid", output="sigmoid", past_seed=True
    )
    trace.add_argument("--x", type=float_list, help="the example x (default: 1, 0.5, -0.5, ...)")
    trace.add_argument("--d", type=float_list, help="the target d (default: 1, 0, 0, ...)")
    trace.add_argument("--model", help="trace a saved model instead")
    trace.add_argument("--example", type=int_at_least(0), help="row of --data to trace")
    trace.add_argument("--data", help="CSV file or bundled dataset for --example")
    trace.add_argument(
        "--learning-rate",
        type=positive_float,
        metavar="ETA",
        help="eta of step 6, one plain gradient step W <- W - eta dE/dW (default 0.1; 1 with "
        "--preset deep-sigmoid)",
    )
    trace.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="a ready network: deep-sigmoid = sizes 4,8,8,8,8,8,2, sigmoid everywhere, "
        "--steps 20, eta 1 (the error vanishing on its way back, step after step)",
    )
    trace.add_argument(
        "--steps",
        type=int_at_least(1),
        metavar="N",
        help="trace N consecutive training steps on the example (the page scrubs through "
        "them; the text shows the first in full and E, |beta^q| for each)",
    )
    trace.add_argument(
        "--exercise",
        type=_exercise,
        default=[],
        metavar="NAME:Q,...",
        help="--format html: hide these quantities for the class to compute (e.g. beta:1,db:2; "
        f"NAME one of {', '.join(EXERCISE_NAMES)}); the page checks typed answers",
    )
    trace.add_argument("--lang", choices=("en", "ru"), default="en")
    trace.add_argument("--format", choices=("text", "markdown", "json", "html"), default="text")
    trace.add_argument("--max-entries", type=int_at_least(1), default=8)
    trace.add_argument("--out", help="write to this file instead of the terminal")
    trace.set_defaults(handler=_cmd_trace)

    check = commands.add_parser(
        "gradcheck",
        help="compare backpropagation with finite differences, per layer",
        description="Central finite differences in float64 against backpropagation's "
        "gradients; exit code 1 if an error is above --tolerance.",
    )
    _add_small_network_options(check, sizes=[4, 5, 3], activation="tanh", output=None)
    check.add_argument("--examples", type=int_at_least(1), default=8)
    check.add_argument("--tolerance", type=positive_float, default=1e-6)
    check.add_argument("--model", help="check a saved model (random inputs of its size)")
    check.set_defaults(handler=_cmd_gradcheck)


# --preset: the options it sets (sizes, activation, output) and its defaults (steps, eta)
PRESETS: dict[str, dict[str, Any]] = {
    "deep-sigmoid": {
        "sizes": [4, 8, 8, 8, 8, 8, 2],
        "activation": "sigmoid",
        "output": "sigmoid",
        "steps": 20,
        "learning_rate": 1.0,
    },  # fmt: skip
}

# the per-layer vectors a page can hide for an exercise (the names of the trace's JSON)
EXERCISE_NAMES = ("s", "y", "f_prime", "back", "beta", "db", "b_new")


def _exercise(text: str) -> list[tuple[str, int]]:
    """--exercise beta:1,db:2 -> [("beta", 1), ("db", 2)] (layers checked against the net)."""
    pairs = []
    for part in text.split(","):
        name, _, q = part.strip().partition(":")
        if name not in EXERCISE_NAMES or not q.isdigit() or int(q) < 1:
            raise argparse.ArgumentTypeError(
                f"must be NAME:Q,... with NAME one of {list(EXERCISE_NAMES)} and Q a layer "
                f">= 1, got {part.strip()!r}"
            )
        pairs.append((name, int(q)))
    return pairs


def _add_small_network_options(
    parser: argparse.ArgumentParser,
    sizes: list[int],
    activation: str,
    output: str | None,
    past_seed: bool = False,
) -> None:
    """--sizes, --activation, --output, --loss, --seed (and --batch-norm, --dropout, --init)
    of the small random network that ``trace`` and ``gradcheck`` build (``_small_network``)
    when no --model is given."""
    parser.add_argument("--sizes", type=layer_sizes, default=sizes)
    parser.add_argument("--activation", default=activation)
    parser.add_argument("--output", choices=sorted(ACTIVATIONS), default=output)
    parser.add_argument("--loss", choices=sorted(LOSSES), default="squared_error")
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    add_layer_options(parser, past_seed)  # the trace shows layer norm and residual layers


def _small_network(args: argparse.Namespace) -> Network:
    """The float64 network of --sizes, --activation, --output, --loss, --seed and the layer
    options (--batch-norm, --dropout, --init)."""
    sizes = args.sizes
    examples = int(getattr(args, "examples", 1) or 1)
    needed, n_params = network_bytes(sizes, 8, examples, examples * (sizes[0] + sizes[-1]))
    require_memory(
        f"--sizes {','.join(map(str, sizes))} with --examples {examples}",
        needed,
        f"{n_params:,} parameters in float64, {examples:,} examples",
    )
    hidden = hidden_activations(args.activation, len(sizes) - 2) if len(sizes) > 2 else []
    refuse_constant_output(args.output, args.loss, sizes[-1], f"--sizes ending in {sizes[-1]}")
    try:
        return Network(
            sizes, hidden, args.output, args.loss, "float64", args.seed, **layer_settings(args)
        )
    except (TypeError, ValueError) as error:
        raise option_error(error) from None


# ----------------------------------------------------------------------------- gradcheck
def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..engine.gradcheck import gradcheck

    net = read_model(args.model).network if args.model else _small_network(args)
    if args.model:
        needed, n_params = network_bytes(
            net.sizes, 8, args.examples, args.examples * (net.sizes[0] + net.sizes[-1])
        )
        require_memory("--examples", needed, f"{args.examples:,} examples of {net.sizes[0]}")
    rng = np.random.default_rng(args.seed)
    X = rng.normal(size=(args.examples, net.sizes[0]))
    D = net.loss.sample_targets(rng, args.examples, net.sizes[-1])
    report = gradcheck(net, X, D, tolerance=args.tolerance)
    table = Table(
        title=f"gradient check: sizes {list(net.sizes)} {net.activations} {net.loss.name}"
    )
    for name in ("layer q", "param", "max elementwise", "normwise"):
        table.add_column(name, justify="right")
    for row in report.rows:
        table.add_row(
            str(row.layer), f"{row.name}^{row.layer}", f"{row.max_elementwise:.3e}",
            f"{row.normwise:.3e}",
        )  # fmt: skip
    console = rich_console()
    console.print(table)
    verdict = "passed" if report.passed else "FAILED"
    console.print(
        f"{verdict}: max norm-wise relative error {report.max_error:.3e} "
        f"(tolerance {args.tolerance:.0e})"
    )
    return 0 if report.passed else EXIT_FAILED


# ----------------------------------------------------------------------------- trace
def _cmd_trace(args: argparse.Namespace) -> int:
    from ..explain.trace import trace_steps
    from ..explain.trace_page import data
    from ..explain.trace_text import render, render_steps

    refuse_overwriting(
        [("--out", args.out)], [("the model file", args.model), ("the data file", args.data)]
    )
    preset = PRESETS.get(args.preset or "", {})
    if preset and args.model:
        raise UserError("--preset builds its own network; it cannot be used with --model")
    for key in ("sizes", "activation", "output"):
        if key in preset:
            setattr(args, key, preset[key])
    steps = args.steps or preset.get("steps", 1)
    learning_rate = args.learning_rate or preset.get("learning_rate", 0.1)
    net, x, d = _model_example(args) if args.model else _given_example(args)
    for name, q in args.exercise:
        last = net.Q - 1 if name == "back" else net.Q
        if q > last:
            raise UserError(f"--exercise {name}:{q}: the layer must be in 1..{last}, got {q}")
    traces = trace_steps(net, x, d, steps, learning_rate=learning_rate)
    result = traces[0] if len(traces) == 1 else traces
    if args.format == "json":  # as_dict(trace), or {"steps": [...]} with --steps N > 1
        text = json.dumps(data(result), indent=1) + "\n"
    elif args.format == "html":  # the page embeds the same JSON
        from ..explain.trace_page import page

        text = page(result, args.lang, args.exercise)
    else:
        text = render(traces[0], args.lang, args.format, args.max_entries)
        if len(traces) > 1:
            text += render_steps(traces, args.lang, args.format)
    write_text(args.out, text)
    return 0 if all(t.agrees for t in traces) else EXIT_FAILED


def _model_example(args: argparse.Namespace) -> tuple[Network, np.ndarray, np.ndarray]:
    """A saved model and row --example of --data (default: its bundled training data)."""
    if args.x is not None or args.d is not None:
        raise UserError("--x/--d trace the default network; with --model use --example")
    model, prep = open_model(args.model)
    net = model.network
    prep = require_prep(args.model, prep)
    if args.example is None:
        raise UserError("--model needs --example ROW (a row of --data)")
    spec = args.data
    if spec is None:
        training = model.metadata.get("training", {})
        if isinstance(training, dict) and training.get("bundled"):
            spec = str(training.get("data"))
        else:
            raise UserError("--example needs --data (the CSV file to take the row from)")
    data = model_data(args.model, prep, spec, prep.target_name, dtype=net.dtype)
    if args.example >= len(data.X):
        raise UserError(
            f"--example must be a row index in [0, {len(data.X) - 1}], got {args.example}"
        )
    i = args.example
    x = prep.transform(prep.columns_of(data)[i : i + 1])[0]
    d = prep.encode(data.target[i : i + 1], net.sizes[-1])[0]
    return net, x, d


def _given_example(args: argparse.Namespace) -> tuple[Network, np.ndarray, np.ndarray]:
    """The small network of the options and the example --x, --d (or the default one)."""
    if args.example is not None or args.data is not None:
        raise UserError("--example and --data need --model")
    net = _small_network(args)
    x = np.array(args.x if args.x is not None else _default_x(net.sizes[0]))
    d = np.array(args.d if args.d is not None else _default_d(net.sizes[-1]))
    for name, values, N in (("--x", x, net.sizes[0]), ("--d", d, net.sizes[-1])):
        if len(values) != N:
            raise UserError(f"{name} must have {N} values (the layer size), got {len(values)}")
    return net, x, d


def _default_x(N: int) -> list[float]:
    return [1.0 if i == 0 else (0.5 if i % 2 else -0.5) for i in range(N)]


def _default_d(N: int) -> list[float]:
    return [1.0] + [0.0] * (N - 1)
