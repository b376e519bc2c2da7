"""Statistics, the machine's description and the printed tables (Markdown) of the benchmark."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.workloads import STEADY, TARGETS


def stats(seconds: Sequence[float]) -> dict[str, float]:
    """Median, min and max of the timed epochs."""
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)}


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f}"


def machine() -> dict[str, Any]:
    """Where the benchmark ran: CPU, cores, library versions and the BLAS kernel."""
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = [
        f"{p.get('internal_api')} {p.get('version')} {p.get('architecture', '')} "
        f"({p.get('num_threads')} threads, {os.path.basename(p.get('filepath', ''))})"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    ]
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "environment": {
            k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ
        },
    }
    for module, distribution in (("sklearn", "scikit-learn"), ("torch", "torch")):
        try:  # the version without importing (PyTorch's threads stay out of this process)
            info[module] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            info[module] = None
    return info


def machine_lines(info: dict[str, Any], threads: int) -> list[str]:
    """The heading lines: CPU, threads, load, versions, BLAS, and a warning about the env."""
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores; BLAS threads {threads}; "
        f"load average {load_average()} (other processes share the cores: compare within one "
        "run)",
        f"python {info['python']}, numpy {info['numpy']}, scikit-learn {info['sklearn']}, "
        f"torch {info['torch']}",
    ]
    lines += [f"BLAS: {line}" for line in info["blas"]]
    if info["environment"]:
        lines.append(
            f"note: {info['environment']} is set; it may slow OpenBLAS (unset it to benchmark)"
        )
    return lines


def blas_threads() -> int:
    """The number of threads of NumPy's BLAS (the default for every contender)."""
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
            return int(pool["num_threads"])
    return os.cpu_count() or 1


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, where the system reports them."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "unknown"


def unsteady(rows: dict[str, Any]) -> dict[str, float]:
    """The contenders whose slowest timed epoch took over STEADY times their fastest."""
    spreads = {name: row["max"] / row["min"] for name, row in rows.items()}
    return {name: spread for name, spread in spreads.items() if spread > STEADY}


def add_ratios(rows: dict[str, Any]) -> None:
    """Each row's median over the bound's and over betaprop's (``per_bound``, ``per_betaprop``)."""
    for row in rows.values():
        for other in ("bound", "betaprop"):
            if other in rows:
                row[f"per_{other}"] = row["median"] / rows[other]["median"]


def epoch_table(rows: dict[str, Any]) -> list[str]:
    """One row per contender: epoch times, ratios, peak memory."""
    lines = [
        "| contender | s/epoch median | min | max | ÷ bound | ÷ betaprop | peak RSS MiB "
        "| over data MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        per_bound = f"{row['per_bound']:.2f}" if "per_bound" in row else "-"
        per_betaprop = f"{row['per_betaprop']:.2f}" if "per_betaprop" in row else "-"
        lines.append(
            f"| {name} | {row['median']:.4f} | {row['min']:.4f} | {row['max']:.4f} | "
            f"{per_bound} | {per_betaprop} | {mib(row['peak_rss'])} | {mib(row['over_data'])} |"
        )
    return lines


def target_lines(name: str, rows: dict[str, Any]) -> list[str]:
    """The issue's targets for the workload: met or missed, and each in units of the bound."""
    if "betaprop" not in rows or name not in TARGETS:
        return []
    parts, below = [], []
    for other, target in TARGETS[name].items():
        if other in rows:
            ratio = rows["betaprop"]["median"] / rows[other]["median"]
            verdict = "met" if ratio <= target else "missed"
            part = f"betaprop ÷ {other} = {ratio:.3f} (target <= {target}: {verdict}"
            if other != "bound" and "bound" in rows:
                # the target as a time: target x the contender's epoch, over the bound's
                needed = target * rows[other]["median"] / rows["bound"]["median"]
                part += f"; needs betaprop <= {needed:.2f} x bound"
                if needed < 1.0:
                    below.append(other)
            parts.append(part + ")")
    lines = ["targets: " + "; ".join(parts)] if parts else []
    if below:
        lines.append(
            f"note: in this run the target against {' and '.join(below)} asks for less time "
            "than the GEMM bound alone (the matrix products every contender performs)"
        )
    return lines


def profile_table(result: dict[str, Any]) -> list[str]:
    """betaprop's epoch phase by phase, beside a fit epoch and the GEMM bound."""
    phases, total, bound = result["phases"], sum(result["phases"].values()), result["bound"]
    lines = ["| phase | s/epoch | share | ÷ bound |", "|---|---|---|---|"]
    for phase, seconds in phases.items():
        lines.append(f"| {phase} | {seconds:.4f} | {seconds / total:.0%} | {seconds / bound:.2f} |")
    return lines + [
        f"| sum of phases | {total:.4f} | 100% | {total / bound:.2f} |",
        f"| fit epoch (median) | {result['fit']:.4f} | | {result['fit'] / bound:.2f} |",
        f"| GEMM bound (median) | {bound:.4f} | | 1.00 |",
    ]


def memory_table(rows: dict[str, Any]) -> list[str]:
    """The memory modes: work buffers, peak memory, epoch time over memory="all"'s."""
    lines = [
        "| memory | work buffers MiB | peak RSS MiB | over data MiB | s/epoch median | ÷ all |",
        "|---|---|---|---|---|---|",
    ]
    for memory, row in rows.items():
        ratio = row["median"] / rows["all"]["median"] if "all" in rows else math.nan
        row["per_all"] = ratio
        lines.append(
            f"| {memory} | {mib(row['work_bytes'])} | {mib(row['peak_rss'])} | "
            f"{mib(row['over_data'])} | {row['median']:.4f} | {ratio:.2f} |"
        )
    return lines
