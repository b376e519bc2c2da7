"""``betaprop bench``: options, the sections of a run (workloads, profile, estimators, memory
modes) and ``main``. Every measurement runs in a child process (``processes``)."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from benchmarks.processes import interleaved, spawn
from benchmarks.report import (
    add_ratios,
    blas_threads,
    epoch_table,
    load_average,
    machine,
    machine_lines,
    memory_table,
    profile_table,
    stats,
    target_lines,
    unsteady,
)
from benchmarks.workers import estimator_class
from benchmarks.workloads import (
    CONTENDERS,
    LEARNING_RATE,
    MEMORY_BATCH,
    MEMORY_N,
    MEMORY_QUICK_N,
    MEMORY_SIZES,
    MOMENTUM,
    QUICK_N,
    STEADY,
    WORKLOADS,
    short,
)

Say = Callable[[str], None]
MEMORY_MODES = ("all", "recompute")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command's options, checked (a bad one exits with status 2 and one message)."""
    parser = argparse.ArgumentParser(
        prog="betaprop bench",
        description="Time one training epoch of betaprop, scikit-learn, PyTorch and the GEMM "
        "bound; compare estimators and memory modes.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer examples and repeats")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma list of {list(WORKLOADS)}"
    )
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"comma list of {list(CONTENDERS)}"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed epochs (default 5, quick 3)"
    )
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: NumPy's)")
    parser.add_argument("--no-estimators", action="store_true", help="skip the estimator table")
    parser.add_argument("--no-checkpoint", action="store_true", help="skip the memory modes")
    parser.add_argument(
        "--profile", action="store_true", help="also time betaprop's epoch phase by phase"
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    for option, accepted in (("workloads", WORKLOADS), ("contenders", CONTENDERS)):
        chosen = [w for w in getattr(args, option).split(",") if w]
        for name in chosen:
            if name not in accepted:
                parser.error(f"--{option} must name some of {list(accepted)}, got {name!r}")
        setattr(args, option, chosen)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.repeats < 1:
        parser.error(f"--repeats must be an integer >= 1, got {args.repeats!r}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be an integer >= 1, got {args.threads!r}")
    return args


def run(args: argparse.Namespace, say: Say = print) -> dict[str, Any]:
    """Run the benchmark sections chosen in ``args``; ``say`` prints each line."""
    threads = args.threads or blas_threads()
    info = machine()
    results: dict[str, Any] = {"machine": info, "threads": threads, "workloads": {}}
    for line in machine_lines(info, threads):
        say(line)
    contenders = list(args.contenders)
    if "torch" in contenders and info["torch"] is None:
        say("note: PyTorch is not installed; the torch contender is skipped")
        contenders.remove("torch")
    for name in args.workloads:
        results["workloads"][name] = workload_section(name, contenders, args, threads, say)
    if args.profile:
        results["profile"] = profile_section(args, threads, say)
    if not args.no_estimators:
        results["estimators"] = estimators_section(args, threads, say)
    if not args.no_checkpoint:
        results["checkpoint"] = memory_section(args, threads, say)
    say("")
    say(f"load average at the end: {load_average()}")
    return results


def workload_section(
    name: str, contenders: list[str], args: argparse.Namespace, threads: int, say: Say
) -> dict[str, Any]:
    """Every contender's epochs on one workload, interleaved; its table and targets."""
    workload = WORKLOADS[name]
    n = QUICK_N[name] if args.quick else workload.n
    say("")
    say(
        f"## {name}: {n} x {workload.sizes[0]}, {len(workload.sizes) - 2} hidden "
        f"({workload.activation}), sizes {short(workload.sizes)}, "
        f"batch {workload.batch_size}, float32, SGD lr {LEARNING_RATE} momentum {MOMENTUM}; "
        f"{args.repeats} epochs after a warm-up"
    )
    tasks = {
        contender: {"kind": "epoch", "workload": name, "contender": contender}
        | {"threads": threads, "n": n}
        for contender in contenders
    }
    rows: dict[str, Any] = {}
    for contender, result in interleaved(tasks, args.repeats).items():
        if "error" in result or not result["seconds"]:
            say(f"note: {contender} failed: {result.get('error', 'no epoch timed')}")
            continue
        rows[contender] = {**result, **stats(result["seconds"])}
    rows = {c: rows[c] for c in contenders if c in rows}
    add_ratios(rows)
    spreads = unsteady(rows)
    for line in epoch_table(rows) + target_lines(name, rows):
        say(line)
    if spreads:
        listed = ", ".join(f"{c} {spread:.2f}" for c, spread in spreads.items())
        say(
            f"note: unsteady epochs (max ÷ min > {STEADY}: {listed}): the machine's load "
            "changed during this workload, so its ratios are unreliable; run it again"
        )
    return {"n": n, "workload": asdict(workload), "rows": rows, "steady": not spreads}


def profile_section(args: argparse.Namespace, threads: int, say: Say) -> dict[str, Any]:
    """Print where betaprop's epoch goes, phase by phase, for each chosen workload."""
    out = {}
    for name in args.workloads:
        n = QUICK_N[name] if args.quick else WORKLOADS[name].n
        task = {"kind": "profile", "workload": name, "n": n, "repeats": args.repeats}
        result = spawn({**task, "threads": threads})
        say("")
        if "error" in result:
            say(f"note: profile of {name} failed: {result['error']}")
            continue
        say(
            f"## profile, {name}: betaprop's epoch phase by phase (s/epoch, median of "
            f"{args.repeats}, interleaved with fit and bound epochs)"
        )
        for line in profile_table(result):
            say(line)
        out[name] = result
    return out


def estimators_section(args: argparse.Namespace, threads: int, say: Say) -> Any:
    """betaprop's MLPClassifier against scikit-learn's on digits: fit time and accuracy."""
    say("")
    if estimator_class() is None:
        say("## estimators: betaprop.MLPClassifier does not exist yet; table skipped")
        return None
    max_iter = 10 if args.quick else 30
    say(
        f"## estimators: digits (1797 x 64), hidden (64,), relu, batch 32, alpha 1e-4, "
        f"{max_iter} epochs, fit time median of {args.repeats} after a warm-up fit, the "
        "contenders' fits alternating"
    )
    lines = [
        "| solver | input | betaprop fit s | sklearn fit s | betaprop ÷ sklearn "
        "| train accuracy betaprop / sklearn |",
        "|---|---|---|---|---|---|",
    ]
    table = []
    for solver in ("adam", "sgd"):
        for dtype in ("float64", "float32"):
            task: dict[str, Any] = {"kind": "estimators", "solver": solver, "dtype": dtype}
            task |= {"max_iter": max_iter, "repeats": args.repeats, "threads": threads}
            result = spawn(task)
            if "error" in result:
                say(f"note: estimators {solver} {dtype} failed: {result['error']}")
                continue
            ours = statistics.median(result["betaprop"]["seconds"])
            theirs = statistics.median(result["sklearn"]["seconds"])
            table.append({"solver": solver, "dtype": dtype, **result, "ratio": ours / theirs})
            lines.append(
                f"| {solver} | {dtype} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} "
                f"(target <= 0.5) | {result['betaprop']['train_accuracy']:.3f} / "
                f"{result['sklearn']['train_accuracy']:.3f} |"
            )
    for line in lines:
        say(line)
    return table


def memory_section(args: argparse.Namespace, threads: int, say: Say) -> dict[str, Any]:
    """The two memory modes of ``Network`` on Q = 256 layers: buffers, peak memory, time."""
    say("")
    n = MEMORY_QUICK_N if args.quick else MEMORY_N
    say(
        f"## memory modes: {n} x 128, {short(MEMORY_SIZES)} (Q = {len(MEMORY_SIZES) - 1}),"
        f" tanh, batch {MEMORY_BATCH}, float32; {args.repeats} epochs after a warm-up"
    )
    tasks = {
        memory: {"kind": "memory", "memory": memory, "n": n, "threads": threads}
        for memory in MEMORY_MODES
    }
    rows: dict[str, Any] = {}
    for memory, result in interleaved(tasks, args.repeats).items():
        if "error" in result or not result["seconds"]:
            say(f"note: memory={memory!r} failed: {result.get('error', 'no epoch timed')}")
            continue
        rows[memory] = {**result, **stats(result["seconds"])}
    rows = {m: rows[m] for m in MEMORY_MODES if m in rows}
    for line in memory_table(rows):
        say(line)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``betaprop bench``: run the benchmark and print its tables."""
    args = parse(argv)
    results = run(args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0
