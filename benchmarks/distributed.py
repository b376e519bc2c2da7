"""Data parallel training (issue 13): the wide workload on 1 process x 2 BLAS threads against
2 processes x 1 thread each (and 1 process x 1 thread, a control), the all-reduce's share of
a step, and a scaling model.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.distributed \
        [--n 8192] [--epochs 1] [--batch 128] [--repeats 3]

Starts ``mpiexec -n 2`` itself (the ``mpi`` extra). The contenders take turns, ``--repeats``
rounds; the figures are medians, with the load average before and after. The all-reduce's
share: the same
Allreduce (the flat gradients, float32) timed alone on the 2 ranks, times the number of
steps, over the epoch's time. The scaling model for K nodes, batch B, P parameters
(float32, 4P bytes): a step costs t_c B / K (t_c: measured compute per example on one
node) + 2 log2(K) alpha + 2 (K - 1) / K * 4P / bandwidth (a ring all-reduce's bytes, a
tree's latency), and efficiency = (t_c B) / (K * step).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from statistics import median

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.workloads import WORKLOADS, load, one_hot  # noqa: E402

ALPHA = 5e-6  # s: one message's latency, InfiniBand-class (an assumption, not measured)
BANDWIDTH = 10e9  # bytes/s per node: 100 Gb/s (an assumption, not measured)
NODES = (8, 16, 32, 64)


def measure(n: int, epochs: int, batch: int, threads: int) -> dict:
    """This process's (or all ranks') samples per second on the wide workload."""
    from threadpoolctl import threadpool_limits

    from betaprop.engine.network import Network
    from betaprop.training.distributed import world
    from betaprop.training.loop import fit

    workload = WORKLOADS["wide"]
    X, labels = load(workload, n)
    D = one_hot(labels, workload.sizes[-1])
    comm = world()
    net = Network(list(workload.sizes), workload.activation, loss="cross_entropy", seed=0)
    with threadpool_limits(threads):
        fit(net, X[: 4 * batch], D[: 4 * batch], epochs=1, batch_size=batch, seed=0, comm=comm)
        started = time.perf_counter()
        fit(net, X, D, optimizer="sgd", epochs=epochs, batch_size=batch, seed=0, comm=comm)
        seconds = time.perf_counter() - started
    result = {"samples_per_s": n * epochs / seconds, "params": net.n_params, "seconds": seconds}
    if comm is not None:  # the step's Allreduce alone, as many times as the epochs had steps
        from mpi4py import MPI

        buffer = np.zeros(net.n_params + 2, dtype=net.dtype)
        steps = epochs * math.ceil(n / batch)
        comm.Barrier()
        started = time.perf_counter()
        for _ in range(steps):
            comm.Allreduce(MPI.IN_PLACE, buffer)
        result["allreduce_share"] = (time.perf_counter() - started) / seconds
    return result


def model(per_example: float, params: int, batch: int, nodes: int) -> float:
    """Predicted efficiency on ``nodes`` nodes (see the module docstring)."""
    compute = per_example * batch
    reduce = 2 * math.log2(nodes) * ALPHA + 2 * (nodes - 1) / nodes * 4 * params / BANDWIDTH
    return compute / (nodes * (compute / nodes + reduce))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one rank of the 2-process run
        result = measure(args.n, args.epochs, args.batch, threads=1)
        from betaprop.training.distributed import world

        if world().Get_rank() == 0:
            print(json.dumps(result))
        return
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    command = [mpiexec, "-n", "2", sys.executable, "-m", "mpi4py", os.path.abspath(__file__)]
    command += ["--worker", "--n", str(args.n), "--epochs", str(args.epochs)]
    command += ["--batch", str(args.batch)]
    load_before = os.getloadavg()
    rounds: dict[str, list[dict]] = {"1x1": [], "1x2": [], "2x1": []}
    for _ in range(args.repeats):  # the contenders take turns
        rounds["1x1"].append(measure(args.n, args.epochs, args.batch, threads=1))
        rounds["1x2"].append(measure(args.n, args.epochs, args.batch, threads=2))
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
        rounds["2x1"].append(json.loads(done.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()
    rate = {name: median(r["samples_per_s"] for r in runs) for name, runs in rounds.items()}
    params = rounds["1x2"][0]["params"]
    share = median(r["allreduce_share"] for r in rounds["2x1"])
    print(f"wide, n={args.n}, batch {args.batch}, {params} parameters (float32)")
    print(
        f"medians of {args.repeats} rounds; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (1 min; {os.cpu_count()} cores)"
    )
    print(f"1 process x 1 thread  : {rate['1x1']:9.0f} samples/s")
    print(f"1 process x 2 threads : {rate['1x2']:9.0f} samples/s")
    print(
        f"2 processes x 1 thread: {rate['2x1']:9.0f} samples/s "
        f"({rate['2x1'] / rate['1x2']:.2f}x 1 x 2 threads, {rate['2x1'] / rate['1x1']:.2f}x 1 x 1)"
    )
    print(f"all-reduce share of a step (2 ranks, one node): {share:.1%}")
    # one node's compute per example: the fastest layout (the machine is shared; the
    # smallest t_c gives the all-reduce the largest share, the cautious prediction)
    per_example = 1.0 / max(rate.values())
    print(
        f"model (alpha {ALPHA:g} s, {BANDWIDTH / 1e9:g} GB/s), compute/example {per_example:.3g} s"
    )
    for batch in (args.batch, 1024):
        cells = ", ".join(f"{k}: {model(per_example, params, batch, k):.0%}" for k in NODES)
        print(f"  B = {batch:5d}: efficiency on nodes {cells}")
    for batch in (2**p for p in range(6, 20)):
        if model(per_example, params, batch, 16) >= 0.8:
            print(f"  80 % at 16 nodes from B = {batch}")
            break


if __name__ == "__main__":
    main()
