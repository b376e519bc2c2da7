"""What the options of ``betaprop train`` ask for: the row splits, the network, and the
optimizer with its learning-rate schedule."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import numpy as np

from ..engine.losses import LOSSES
from ..engine.network import Network
from ..files.preprocessing import Preprocessing
from ..training.optimizers import OPTIMIZERS, get_optimizer
from ..training.schedules import get_schedule
from .options import (
    UserError,
    hidden_activations,
    layer_settings,
    option_error,
    refuse_constant_output,
)

__all__ = ["split_rows", "build_network", "optimizer_and_schedule"]


def split_rows(
    n: int, labels: list[str] | None, val: float, test: float, seed: int
) -> dict[str, np.ndarray]:
    """Seeded train/validation/test row indices, stratified by class where possible."""
    from sklearn.model_selection import train_test_split

    if val + test >= 1.0:
        raise UserError(
            f"--val-fraction + --test-fraction must be < 1, got {val!r} + {test!r} = {val + test!r}"
        )
    rows = np.arange(n)

    def cut(index: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        if fraction == 0.0:
            return index, index[:0]
        strata = None if labels is None else np.asarray(labels)[index]  # no loop over rows
        try:
            kept, taken = train_test_split(
                index, test_size=fraction, random_state=seed, stratify=strata
            )
        except ValueError:  # a class too rare to stratify, or too few rows
            try:
                kept, taken = train_test_split(index, test_size=fraction, random_state=seed)
            except ValueError:
                raise UserError(
                    f"the data must have enough rows for the splits, got {n} rows with "
                    f"--val-fraction {val!r} and --test-fraction {test!r}"
                ) from None
        return np.sort(kept), np.sort(taken)

    rest, test_rows = cut(rows, test)
    train_rows, val_rows = cut(rest, val / (1.0 - test) if val else 0.0)
    if len(train_rows) == 0:
        raise UserError(f"the training split is empty ({n} rows); lower the fractions")
    return {"train": train_rows, "validation": val_rows, "test": test_rows}


def build_network(args: argparse.Namespace, n_inputs: int, prep: Preprocessing) -> Network:
    """The network of --hidden, --activation, --output, --loss, --dtype, --seed (and
    --batch-norm, --dropout, --init) for the task: N_Q is 1 for regression, and what the
    loss needs for the classes otherwise."""
    classification = prep.task == "classification"
    loss = args.loss or ("cross_entropy" if classification else "squared_error")
    # a class loss serves classification only; one for real numbers (squared error) both tasks
    accepted = sorted(
        name
        for name, candidate in LOSSES.items()
        if candidate.classification == classification
        or (classification and candidate.targets == "real")
    )
    if loss not in accepted:
        raise UserError(f"--loss must be one of {accepted} for {prep.task}, got {loss!r}")
    try:
        n_outputs = LOSSES[loss].outputs_for(prep.n_classes) if classification else 1
    except ValueError as error:  # "binary_cross_entropy needs 2 classes ..."
        raise UserError(f"--loss {error}") from None
    refuse_constant_output(args.output, loss, n_outputs, f"--task {prep.task}")
    hidden = list(args.hidden)
    activations = hidden_activations(args.activation, len(hidden)) if hidden else []
    try:
        return Network(
            [n_inputs, *hidden, n_outputs],
            activation=activations,
            output=args.output,
            loss=loss,
            dtype=args.dtype,
            seed=args.seed,
            **layer_settings(args),
        )
    except (TypeError, ValueError) as error:
        raise option_error(error) from None


def optimizer_and_schedule(args: argparse.Namespace) -> tuple[Any, Any]:
    """The optimizer (step 6) and learning-rate schedule that the options ask for."""
    settings: dict[str, Any] = {}
    if args.lr is not None:
        settings["learning_rate"] = args.lr
    if getattr(args, "weight_decay", None) is not None:
        settings["weight_decay"] = args.weight_decay
    if getattr(args, "momentum", None) is not None:
        accepting = sorted(
            name
            for name, kind in OPTIMIZERS.items()
            if "momentum" in {f.name for f in dataclasses.fields(kind)}
        )
        if args.optimizer not in accepting:
            raise UserError(
                f"--momentum needs --optimizer one of {accepting}, got {args.optimizer!r}"
            )
        settings["momentum"] = args.momentum
    name = getattr(args, "schedule", "constant")
    try:
        optimizer = get_optimizer(args.optimizer, **settings)
        schedule = get_schedule(name, T_max=args.epochs) if name == "cosine" else get_schedule(name)
    except (TypeError, ValueError) as error:
        raise UserError(str(error)) from None
    return optimizer, schedule
