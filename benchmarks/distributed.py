"""Data parallel training (issues 13, 25): measured samples/s at K = 1 and 2, the per-step
fixed cost, the all-reduce's time, validation sharded or not, and a scaling model calibrated
with them.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.distributed \
        [--n 8192] [--validation 2048] [--batch 128] [--repeats 3] [--json]

Wide workload (784-256-128-10, float32), 1 BLAS thread per process. Starts ``mpiexec -n 2``
itself (the ``mpi`` extra); K = 1 (this process) and K = 2 take turns, ``--repeats`` rounds,
medians, the load average before and after. Measured, on this machine:

- samples/s of one training epoch (n rows, batch B), K = 1 and K = 2;
- the step's cost t(B) = t_0 + t_c B from one process's epochs at B = 8 and B = 128: t_0 is
  the per-step fixed cost (Python, the optimizer's update over all P parameters, the small
  products' overheads), t_c the compute per example;
- the all-reduce: the step's Allreduce (P + 2 float32) alone between the 2 ranks (shared
  memory), per call;
- an epoch with validation (n training rows, then the validation rows evaluated), K = 2,
  validation sharded (each rank its share) and, as before issue 25, on every rank in full.

Modelled, for K nodes of one rank each: step(K) = t_0 + t_c B / K + allreduce(K), with
allreduce(K) = 2 log2(K) alpha + 2 (K - 1) / K * 4P / bandwidth (a ring's bytes, a tree's
latency), alpha and bandwidth assumed for 10 GbE and InfiniBand (not measured: one machine
here). Epoch efficiency = T_epoch(1) / (K T_epoch(K)), with n / B steps and the validation's
forward passes (v per row, measured) divided by K when sharded.
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

# assumed interconnects (alpha: one message's latency, s; bandwidth: bytes/s per node)
NETWORKS = {"10 GbE": (30e-6, 1.1e9), "InfiniBand EDR": (3e-6, 11e9)}
NODES = (2, 8, 16, 32, 64)
SMALL_BATCH = 8


def measure(n: int, n_val: int, batch: int) -> dict:
    """One process's figures (or, under mpiexec, the ranks' together)."""
    from threadpoolctl import threadpool_limits

    from betaprop.engine.network import Network
    from betaprop.training import distributed
    from betaprop.training.loop import evaluate, fit

    workload = WORKLOADS["wide"]
    X, labels = load(workload, n + n_val)
    D = one_hot(labels, workload.sizes[-1])
    X, D, Xv, Dv = X[:n], D[:n], X[n:], D[n:]
    comm = distributed.world()
    net = Network(list(workload.sizes), workload.activation, loss="cross_entropy", seed=0)
    result: dict = {"params": net.n_params}

    def epoch(size: int, rows: int, validation: tuple | None = None) -> float:
        if comm is not None:
            comm.Barrier()
        started = time.perf_counter()
        fit(net, X[:rows], D[:rows], optimizer="sgd", epochs=1, batch_size=size, seed=0,
            comm=comm, validation_data=validation)  # fmt: skip
        return time.perf_counter() - started

    with threadpool_limits(1):
        epoch(batch, 4 * batch)  # warm-up: buffers, BLAS
        result["seconds"] = epoch(batch, n)
        result["samples_per_s"] = n / result["seconds"]
        small_rows = min(n, 64 * SMALL_BATCH)
        result["step_small"] = epoch(SMALL_BATCH, small_rows) / (small_rows / SMALL_BATCH)
        result["step_batch"] = result["seconds"] / math.ceil(n / batch)
        if n_val:
            result["with_validation"] = epoch(batch, n, (Xv, Dv))
            started = time.perf_counter()
            evaluate(net, Xv, Dv)
            result["validation_alone"] = time.perf_counter() - started
            if comm is not None:  # as before issue 25: every rank evaluates every row
                sharded = distributed.DataParallel.evaluate
                distributed.DataParallel.evaluate = lambda self, *a, **k: evaluate(*a, **k)
                try:
                    result["with_full_validation"] = epoch(batch, n, (Xv, Dv))
                finally:
                    distributed.DataParallel.evaluate = sharded
    if comm is not None:  # the step's Allreduce alone, per call
        from mpi4py import MPI

        buffer = np.zeros(net.n_params + 2, dtype=net.dtype)
        calls = 200
        comm.Barrier()
        started = time.perf_counter()
        for _ in range(calls):
            comm.Allreduce(MPI.IN_PLACE, buffer)
        result["allreduce"] = (time.perf_counter() - started) / calls
    return result


def allreduce_time(params: int, nodes: int, alpha: float, bandwidth: float) -> float:
    """Modelled: a tree's latency, a ring's bytes (float32)."""
    if nodes == 1:
        return 0.0
    return 2 * math.log2(nodes) * alpha + 2 * (nodes - 1) / nodes * 4 * params / bandwidth


def efficiency(fig: dict, batch: int, nodes: int, network: str, sharded: bool = True) -> float:
    """Modelled epoch efficiency T(1) / (K T(K)) of n training rows and the validation rows."""
    alpha, bandwidth = NETWORKS[network]
    t0, tc, steps, v = fig["t0"], fig["tc"], fig["n"] / batch, fig["v"] * fig["n_val"]

    def epoch(k: int) -> float:
        step = t0 + tc * batch / k + allreduce_time(fig["params"], k, alpha, bandwidth)
        return steps * step + (v / k if sharded else v)

    return epoch(1) / (nodes * epoch(nodes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--validation", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one rank of the 2-process run
        from betaprop.training.distributed import world

        result = measure(args.n, args.validation, args.batch)
        if world().Get_rank() == 0:
            print(json.dumps(result))
        return
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    command = [mpiexec, "-n", "2", sys.executable, "-m", "mpi4py", os.path.abspath(__file__)]
    command += ["--worker", "--n", str(args.n), "--validation", str(args.validation)]
    command += ["--batch", str(args.batch)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    load_before = os.getloadavg()
    rounds: dict[str, list[dict]] = {"K=1": [], "K=2": []}
    for _ in range(args.repeats):  # K = 1 and K = 2 take turns
        rounds["K=1"].append(measure(args.n, args.validation, args.batch))
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        if done.returncode:
            sys.exit(done.stderr)
        rounds["K=2"].append(json.loads(done.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()

    def med(k: str, key: str) -> float:
        return median(r[key] for r in rounds[k])

    one, two = "K=1", "K=2"
    B, n, n_val = args.batch, args.n, args.validation
    tc = (med(one, "step_batch") - med(one, "step_small")) / (B - SMALL_BATCH)
    t0 = med(one, "step_small") - SMALL_BATCH * tc
    fig = {
        "params": rounds[one][0]["params"], "n": n, "n_val": n_val, "batch": B,
        "samples_per_s": {one: med(one, "samples_per_s"), two: med(two, "samples_per_s")},
        "t0": t0, "tc": tc, "allreduce": med(two, "allreduce"),
        "step_small_K2": med(two, "step_small"),
        "v": med(one, "validation_alone") / max(n_val, 1),
        "load": [round(load_before[0], 2), round(load_after[0], 2)], "cores": os.cpu_count(),
    }  # fmt: skip
    print(f"wide, n = {n} (+ {n_val} validation rows), batch {B}, {fig['params']:,} parameters")
    print(
        f"medians of {args.repeats} rounds, 1 BLAS thread per process; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min; {os.cpu_count()} cores)"
    )
    rate1, rate2 = fig["samples_per_s"][one], fig["samples_per_s"][two]
    print("measured:")
    print(f"  K = 1: {rate1:9.0f} samples/s")
    print(
        f"  K = 2: {rate2:9.0f} samples/s ({rate2 / rate1:.2f}x, "
        f"efficiency {rate2 / 2 / rate1:.0%})"
    )
    print(f"  per-step fixed cost t_0 = {t0 * 1e3:.3f} ms, per example t_c = {tc * 1e6:.2f} us")
    print(f"  step at B = {SMALL_BATCH}: {med(one, 'step_small') * 1e3:.3f} ms at K = 1, "
          f"{fig['step_small_K2'] * 1e3:.3f} ms at K = 2")  # fmt: skip
    print(f"  all-reduce of {fig['params'] + 2:,} float32, 2 ranks, shared memory: "
          f"{fig['allreduce'] * 1e3:.3f} ms")  # fmt: skip
    if n_val:
        t1 = med(one, "with_validation")
        sharded, full = med(two, "with_validation"), med(two, "with_full_validation")
        fig["epoch_with_validation"] = {one: t1, "K=2 sharded": sharded, "K=2 full": full}
        print(f"  epoch + validation: K = 1 {t1:.3f} s; K = 2 sharded {sharded:.3f} s "
              f"(efficiency {t1 / 2 / sharded:.0%}), K = 2 every rank in full {full:.3f} s "
              f"(efficiency {t1 / 2 / full:.0%})")  # fmt: skip
    print("modelled (alpha, bandwidth assumed; t_0, t_c, v measured above):")
    header = " | ".join(f"K = {k}" for k in NODES)
    for network, (alpha, bandwidth) in NETWORKS.items():
        print(f"  {network} (alpha {alpha * 1e6:g} us, {bandwidth / 1e9:g} GB/s): {header}")
        for batch in (B, 1024):
            cells = " | ".join(f"{efficiency(fig, batch, k, network):.0%}" for k in NODES)
            old = efficiency(fig, batch, 16, network, sharded=False)
            print(f"    B = {batch:5d}: {cells}   (K = 16, validation not sharded: {old:.0%})")
    if args.json:
        print(json.dumps(fig))


if __name__ == "__main__":
    main()
