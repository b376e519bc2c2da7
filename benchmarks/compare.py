"""Paired before / after: the same training epoch from two source trees of betaprop, in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python -m benchmarks.compare --before ../base/src --after src
    python -m benchmarks.compare --before ../base/src --quick     # a short look

For each workload (wide, small, deep as in ``betaprop bench``, and ``memory``: the Q = 256
network of the memory modes, memory="checkpoint" before against "recompute" after) a child
process per tree imports betaprop from that tree (``PYTHONPATH``; the child checks where
betaprop came from), builds the same network, runs a warm-up epoch, then times epochs on
request: ``betaprop.fit(net, X, D, optimizer=SGD(0.01, momentum=0.9), epochs=1,
batch_size=..., seed=k, optimizer_state=state)``, the public API common to both trees. The
parent asks the two children in turn, alternating which goes first (AB, BA, AB, ...), so
that both see the same load; one sample is k epochs (k chosen so that a sample takes about
``--sample`` seconds: small's epoch is milliseconds) and a pair is one sample of each.
``--processes`` fresh pairs of children repeat this (memory placement differs between
processes).

Per workload: the median epoch of each tree, the ratio of the medians, and the median of the
paired ratios after ÷ before with their interquartile range. The issue asks for every
workload within 3 % (ratio <= 1.03). Timings are noisy on a shared machine: read the paired
ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script, `python benchmarks/compare.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.processes import ROOT, SETTLE, finish, request, start
from benchmarks.report import blas_threads, load_average, machine, machine_lines
from benchmarks.workers import READY
from benchmarks.workloads import (
    MEMORY_ACTIVATION,
    MEMORY_BATCH,
    MEMORY_N,
    MEMORY_QUICK_N,
    MEMORY_SIZES,
    QUICK_N,
    STEADY,
    WORKLOADS,
    Workload,
    load,
    load_memory,
    one_hot,
    short,
)

Say = Callable[[str], None]
TREES = ("before", "after")
CHOICES = (*WORKLOADS, "memory")
TOLERANCE = 0.03  # the issue: each workload's epoch within 3 % of today's


# --------------------------------------------------------------------------- arithmetic
def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """The first and third quartiles (inclusive method); both the value itself for one."""
    if len(values) == 1:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def summarize(before: Sequence[float], after: Sequence[float]) -> dict[str, Any]:
    """The comparison of paired epoch times: before[i] and after[i] were timed together.

    Returns the median of each, their ratio, the median and interquartile range of the
    paired ratios after[i] / before[i], each side's spread (max / min) and a verdict:
    "within" when the median paired ratio is <= 1 + TOLERANCE, "slower" when even the
    first quartile is above it, else "unclear" (the spread straddles the limit).
    """
    if len(before) != len(after) or not before:
        raise ValueError(f"need as many before as after times, got {len(before)}, {len(after)}")
    ratios = [b / a for a, b in zip(before, after, strict=True)]
    q1, q3 = quartiles(ratios)
    ratio = statistics.median(ratios)
    limit = 1.0 + TOLERANCE
    verdict = "within" if ratio <= limit else ("slower" if q1 > limit else "unclear")
    return {
        "pairs": len(ratios),
        "before": statistics.median(before),
        "after": statistics.median(after),
        "ratio_of_medians": statistics.median(after) / statistics.median(before),
        "ratio": ratio,
        "ratio_q1": q1,
        "ratio_q3": q3,
        "spread_before": max(before) / min(before),
        "spread_after": max(after) / min(after),
        "verdict": verdict,
    }


def epochs_per_sample(warm_up_seconds: Sequence[float], sample: float) -> int:
    """Epochs per timed sample, so that one sample takes about ``sample`` seconds."""
    return max(1, math.ceil(sample / max(min(warm_up_seconds), 1e-6)))


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """One row per workload: medians, ratio of medians, paired ratio [IQR], verdict."""
    lines = [
        "| workload | before s/epoch | after s/epoch | after ÷ before (medians) "
        "| paired ratio median [q1, q3] | pairs x epochs | within 3 % |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = {"within": "yes", "slower": "no", "unclear": "unclear (IQR spans 1.03)"}
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['before']:.4f} | {row['after']:.4f} | "
            f"{row['ratio_of_medians']:.3f} | {row['ratio']:.3f} [{row['ratio_q1']:.3f}, "
            f"{row['ratio_q3']:.3f}] | {row['pairs']} x {row['epochs']} | "
            f"{verdicts[row['verdict']]} |"
        )
    return lines


# --------------------------------------------------------------------------- child
def _data(task: dict[str, Any]) -> tuple[Workload, Any, Any]:
    """The workload, X and one-hot D of a task (the same arrays in both trees)."""
    if task["workload"] == "memory":
        X, D = load_memory(int(task["n"]))
        return Workload("memory", MEMORY_SIZES, MEMORY_ACTIVATION, MEMORY_BATCH, len(X)), X, D
    workload = WORKLOADS[task["workload"]]
    X, labels = load(workload, int(task["n"]))
    return workload, X, one_hot(labels, workload.sizes[-1])


def worker(task: dict[str, Any]) -> dict[str, Any]:
    """In a child: betaprop from ``task["tree"]``; serve samples of ``task["workload"]``."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(task["threads"]))
    import betaprop

    where = Path(betaprop.__file__).resolve()
    if not where.is_relative_to(Path(task["tree"]).resolve()):
        raise RuntimeError(f"betaprop was imported from {where}, not from {task['tree']}")
    from benchmarks.contenders import betaprop_network, fit_epoch

    workload, X, D = _data(task)
    net = betaprop_network(workload, memory=task["memory"])
    epoch = fit_epoch(net, X, D, workload.batch_size)
    clock = time.perf_counter
    started = clock()
    epoch()  # warm-up epoch: buffers, caches, thread pools
    print(f"{READY} {clock() - started!r}", flush=True)
    for line in sys.stdin:  # "epochs k": time k epochs, report the seconds per epoch
        words = line.split()
        if len(words) != 2 or words[0] != "epochs":
            break
        k = int(words[1])
        started = clock()
        for _ in range(k):
            epoch()
        print(f"{READY} {(clock() - started) / k!r}", flush=True)
    return {"betaprop": str(where)}


# --------------------------------------------------------------------------- parent
def _seconds(ready: str | None) -> float:
    if ready is None:
        raise RuntimeError("a child stopped before its sample")
    return float(ready.split()[1])


def _start_pair(tasks: dict[str, dict[str, Any]], order: Sequence[str]) -> Any:
    """Start the two children (in ``order``); returns ({tree: child}, {tree: warm-up s})."""
    children: dict[str, subprocess.Popen] = {}
    warm_up: dict[str, float] = {}
    for tree in order:
        env = {**os.environ, "PYTHONPATH": tasks[tree]["tree"]}
        child, ready = start(tasks[tree], env=env, module="benchmarks.compare")
        if child is None:
            for other in children.values():
                finish(other)
            raise RuntimeError(f"the {tree} child failed: {ready}")
        children[tree], warm_up[tree] = child, _seconds(ready)
    return children, warm_up


def measure(
    tasks: dict[str, dict[str, Any]], rounds: int, processes: int, sample: float
) -> dict[str, Any]:
    """Paired samples of the two trees: ``processes`` pairs of children, ``rounds`` each.

    Each pair of children first runs one untimed round (a warm-up), then ``rounds`` timed
    ones; the tree that goes first alternates from one round to the next.
    """
    times: dict[str, list[float]] = {tree: [] for tree in TREES}
    imported: dict[str, str] = {}
    epochs, turn = 0, 0
    for process in range(processes):
        order = TREES if process % 2 == 0 else TREES[::-1]
        children, warm_up = _start_pair(tasks, order)
        epochs = epochs or epochs_per_sample(list(warm_up.values()), sample)
        for round_ in range(rounds + 1):  # round 0 is a warm-up
            first = TREES if turn % 2 == 0 else TREES[::-1]
            turn += 1
            for tree in first:
                seconds = _seconds(request(children[tree], f"epochs {epochs}"))
                if round_:
                    times[tree].append(seconds)
                time.sleep(SETTLE)
        for tree in TREES:
            imported[tree] = finish(children[tree]).get("betaprop", "unknown")
    row = summarize(times["before"], times["after"])
    return {**row, "epochs": epochs, "times": times, "imported": imported}


def describe(tree: str) -> str:
    """A source tree and its git commit (with "-dirty" for uncommitted changes)."""
    try:
        done = subprocess.run(
            ["git", "-C", tree, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        commit = done.stdout.strip() or "no git commit"
    except (OSError, subprocess.SubprocessError):
        commit = "no git"
    return f"{tree} ({commit})"


# --------------------------------------------------------------------------- command
def parse(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked (a bad one exits with status 2 and one message)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Time the same betaprop.fit epoch from two source trees, paired.",
    )
    parser.add_argument("--before", required=True, help="src folder of the old tree")
    parser.add_argument(
        "--after", default=str(Path(ROOT) / "src"), help="src folder of the new tree (this one)"
    )
    parser.add_argument("--workloads", default=",".join(CHOICES), help=f"comma list of {CHOICES}")
    parser.add_argument("--rounds", type=int, default=None, help="pairs per process (10, quick 3)")
    parser.add_argument("--processes", type=int, default=None, help="child pairs (2, quick 1)")
    parser.add_argument("--sample", type=float, default=0.2, help="seconds of one sample, about")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: NumPy's)")
    parser.add_argument("--before-memory", default="checkpoint", help="memory mode, before")
    parser.add_argument("--after-memory", default="recompute", help="memory mode, after")
    parser.add_argument("--quick", action="store_true", help="fewer examples, rounds, processes")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    args.workloads = [w for w in args.workloads.split(",") if w]
    for name in args.workloads:
        if name not in CHOICES:
            parser.error(f"--workloads must name some of {list(CHOICES)}, got {name!r}")
    for tree in TREES:
        path = Path(getattr(args, tree)).resolve()
        if not (path / "betaprop" / "__init__.py").is_file():
            parser.error(f"--{tree} must be a src folder holding betaprop/, got {str(path)!r}")
        setattr(args, tree, str(path))
    if args.rounds is None:
        args.rounds = 3 if args.quick else 10
    if args.processes is None:
        args.processes = 1 if args.quick else 2
    for option in ("rounds", "processes", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option} must be an integer >= 1, got {value!r}")
    return args


def _tasks(name: str, args: argparse.Namespace, threads: int) -> dict[str, dict[str, Any]]:
    """The two children's tasks for one workload (the same but for the tree and memory)."""
    if name == "memory":
        n = MEMORY_QUICK_N if args.quick else MEMORY_N
        memory = {"before": args.before_memory, "after": args.after_memory}
    else:
        n = QUICK_N[name] if args.quick else WORKLOADS[name].n
        memory = {"before": "all", "after": "all"}
    return {
        tree: {"workload": name, "n": n, "threads": threads}
        | {"tree": getattr(args, tree), "memory": memory[tree]}
        for tree in TREES
    }


def _heading(name: str, task: dict[str, Any]) -> str:
    if name == "memory":
        return f"memory: {task['n']} x 128, {short(MEMORY_SIZES)}, tanh, batch {MEMORY_BATCH}"
    workload = WORKLOADS[name]
    return (
        f"{name}: {task['n']} x {workload.sizes[0]}, sizes {short(workload.sizes)}, "
        f"{workload.activation}, batch {workload.batch_size}"
    )


def run(args: argparse.Namespace, say: Say = print) -> dict[str, Any]:
    """Measure every chosen workload, then print the table; ``say`` prints each line."""
    threads = args.threads or blas_threads()
    info = machine()
    for line in machine_lines(info, threads):
        say(line)
    for tree in TREES:
        say(f"{tree}: {describe(getattr(args, tree))}")
    rows: dict[str, dict[str, Any]] = {}
    for name in args.workloads:
        tasks = _tasks(name, args, threads)
        say(
            f"- {_heading(name, tasks['after'])}; memory {tasks['before']['memory']} / "
            f"{tasks['after']['memory']}"
        )
        try:
            rows[name] = measure(tasks, args.rounds, args.processes, args.sample)
        except RuntimeError as error:
            say(f"note: {name} failed: {error}")
    say("")
    for line in table(rows):
        say(line)
    for name, row in rows.items():
        spread = max(row["spread_before"], row["spread_after"])
        if spread > STEADY:
            say(f"note: {name}: unsteady samples (max ÷ min {spread:.2f} > {STEADY}); run again")
    say(f"load average at the end: {load_average()}")
    return {"machine": info, "threads": threads, "options": vars(args), "workloads": rows}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.compare``."""
    args = parse(argv)
    results = run(args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
