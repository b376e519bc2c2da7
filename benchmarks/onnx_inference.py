"""Inference throughput: betaprop ``predict`` vs onnxruntime vs scikit-learn vs PyTorch.

The wide workload's shapes (784-256-128-10, ReLU, softmax output, float32), the same weights in
every contender, batches of 1 and 1024 rows, all in one run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/onnx_inference.py

Each contender is timed in rounds of k calls (k sized to about 50 ms); rounds of the
contenders alternate, so a change of load on the machine touches all of them alike. Printed:
the median time per call, rows per second, and the ratio of every median to onnxruntime's
(> 1: slower than onnxruntime) and to betaprop's. Every contender runs on ``--threads``
threads (default: all cores). Needs onnx, onnxruntime, scikit-learn and torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

import betaprop as bp

SIZES = (784, 256, 128, 10)  # betaprop.bench's "wide" workload


def contenders(net: bp.Network, threads: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """name -> predict function; each computes softmax(W3 relu(W2 relu(W1 x + b1) + b2) + b3)."""
    import onnxruntime as ort
    import torch
    from sklearn.neural_network import MLPClassifier

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        bp.to_onnx(net).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    sklearn = MLPClassifier(hidden_layer_sizes=SIZES[1:-1], max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: fitted only to set attributes
        sklearn.fit(np.zeros((10, SIZES[0]), np.float32), np.arange(10))
    sklearn.coefs_ = [net.W[q].T.copy() for q in range(1, net.Q + 1)]  # sklearn's (in, out)
    sklearn.intercepts_ = [net.b[q][:, 0].copy() for q in range(1, net.Q + 1)]

    torch.set_num_threads(threads)
    layers: list[torch.nn.Module] = []
    for q in range(1, net.Q + 1):
        linear = torch.nn.Linear(SIZES[q - 1], SIZES[q])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(net.W[q]))
            linear.bias.copy_(torch.from_numpy(net.b[q][:, 0]))
        layers += [linear, torch.nn.ReLU() if q < net.Q else torch.nn.Softmax(dim=1)]
    model = torch.nn.Sequential(*layers).eval()

    def torch_predict(X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(X)).numpy()

    return {
        "betaprop": net.predict,
        "onnxruntime": lambda X: session.run(None, {"X": X})[0],
        "scikit-learn": sklearn.predict_proba,
        "pytorch": torch_predict,
    }


def measure(
    functions: dict[str, Callable[[np.ndarray], np.ndarray]], X: np.ndarray, rounds: int
) -> dict[str, float]:
    """Median seconds per call of every function, rounds alternating between them."""
    calls = {}
    for name, predict in functions.items():  # warm up; size a round to about 50 ms
        predict(X)
        start = time.perf_counter()
        predict(X)
        calls[name] = max(1, int(0.05 / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, predict in functions.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                predict(X)
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(times) for name, times in samples.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 1024])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    net = bp.Network(SIZES, "relu", loss="cross_entropy", dtype="float32", seed=0)
    functions = contenders(net, args.threads)
    rng = np.random.default_rng(0)
    print(
        f"network {SIZES}, relu, softmax, float32; {args.threads} threads; median of "
        f"{args.rounds} rounds"
    )
    print(
        f"{'batch':>6} {'contender':<13} {'µs/call':>10} {'rows/s':>12} {'÷ onnxruntime':>14} "
        f"{'÷ betaprop':>11}  max |Δ| vs betaprop"
    )
    with threadpool_limits(limits=args.threads):
        for batch in args.batches:
            X = rng.random((batch, SIZES[0]), dtype=np.float32)
            reference = net.predict(X)
            medians = measure(functions, X, args.rounds)
            for name, seconds in medians.items():
                difference = float(np.max(np.abs(functions[name](X) - reference)))
                print(
                    f"{batch:>6} {name:<13} {seconds * 1e6:>10.1f} {batch / seconds:>12.4g} "
                    f"{seconds / medians['onnxruntime']:>14.2f} "
                    f"{seconds / medians['betaprop']:>11.2f}  {difference:.1e}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
