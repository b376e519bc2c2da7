"""The labels of all ranks for ``cli.sharded``: the task they make, the sorted classes, and
every row's class code in global order (4 bytes a row), so that every rank draws one
process's stratified split."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..files.datasets import class_labels, numeric_labels

__all__ = ["task_and_labels", "same_labels", "all_labels", "strata", "infer_task_of_ranks"]

Array = np.ndarray


def task_and_labels(args: argparse.Namespace, target: Array, comm: Any) -> tuple[str, Any, Any]:
    """The task (--task, or inferred from all ranks' targets), and for classification the
    sorted classes and every row's code (``all_labels``)."""
    task = infer_task_of_ranks(target, comm) if args.task == "auto" else args.task
    distinct, codes = all_labels(target, comm) if task == "classification" else (None, None)
    return task, distinct, codes


def same_labels(early: tuple, now: tuple) -> bool:
    """Whether the early split's task, classes, codes and row count are those read with the
    rows (the same on every rank: all are global)."""
    codes = (early[2] is None) == (now[2] is None) and np.array_equal(early[2], now[2])
    return early[0] == now[0] and early[1] == now[1] and early[3] == now[3] and codes


def all_labels(target: Array, comm: Any) -> tuple[list[str], Array]:
    """Every rank's class labels (``target``: this rank's): the sorted distinct labels, and
    the code of each row of all ranks in global order (an ``Allgatherv`` of int32 codes)."""
    mine = class_labels(target)
    distinct = sorted(set().union(*comm.allgather(set(mine))))
    code = {label: j for j, label in enumerate(distinct)}
    local = np.fromiter((code[label] for label in mine), dtype=np.int32, count=len(mine))
    counts = comm.allgather(len(local))
    codes = np.empty(sum(counts), dtype=np.int32)
    comm.Allgatherv(local, [codes, counts])
    return distinct, codes


def strata(codes: Array) -> Any:
    """What ``split_rows`` stratifies by: the codes themselves (int32). scikit-learn's
    stratified split sees only ``np.unique(y, return_inverse=True)``, and codes that follow
    the labels' sorted order give the same classes in the same order as the labels do, so
    the split is one process's; no n-sized list of strings (8 bytes a row) and its ``<U``
    copy exist. (Typed ``Any``: ``split_rows`` takes labels, and uses them only through
    ``np.asarray``.)"""
    return codes


def infer_task_of_ranks(target: Array, comm: Any) -> str:
    """``infer_task`` over all ranks' targets (``target``: this rank's): classification for
    text labels, or integers with at most ``MAX_INTEGER_CLASSES`` distinct values."""
    from ..files.datasets import MAX_INTEGER_CLASSES

    numbers = numeric_labels(target)
    text = numbers is None and len(target) > 0
    integral = numbers is None or bool(np.all(numbers == np.round(numbers)))
    few = set() if numbers is None else set(np.unique(numbers)[: MAX_INTEGER_CLASSES + 1].tolist())
    gathered = comm.allgather((text, integral, few))
    if any(t for t, _, _ in gathered):
        return "classification"
    values = set().union(*(f for _, _, f in gathered))
    if all(i for _, i, _ in gathered) and len(values) <= MAX_INTEGER_CLASSES:
        return "classification"
    return "regression"
