"""The epoch cost of batch normalisation and of dropout, betaprop against PyTorch (issue 12).

On the deep workload (128 -> 64 x 128 tanh -> 10, softmax + cross-entropy, batch 256,
float32, SGD with momentum), each library trains three networks: plain, with batch
normalisation on every hidden layer (PyTorch: ``Sequential(Linear, BatchNorm1d, Tanh, ...)``)
and with dropout on every hidden layer (``Sequential(Linear, Tanh, Dropout, ...)``). After a
warm-up epoch each, the six epochs are timed in rounds, interleaved (the order rotates every
round), in one process with the same thread count for both libraries. Printed per library:
the median epoch of each network and its ratio to the same library's plain epoch. The goal:
betaprop's ratios no worse than PyTorch's.

    python -m benchmarks.normalization            # 2,048 examples, 5 rounds, 1 thread
    python -m benchmarks.normalization --full --rounds 9 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.contenders import fit_epoch
from benchmarks.workloads import LEARNING_RATE, MOMENTUM, QUICK_N, WORKLOADS, load, one_hot

LIBRARIES = ("betaprop", "torch")
VARIANTS = ("plain", "batch_norm", "dropout")
DROPOUT = 0.2  # the dropout rate of every hidden layer

Epoch = Callable[[], Any]
Key = tuple[str, str]  # (library, variant)


def betaprop_epoch(variant: str, X: np.ndarray, labels: np.ndarray) -> Epoch:
    """betaprop's epoch (``fit``, one epoch per call) on the deep network of ``variant``."""
    import betaprop

    workload = WORKLOADS["deep"]
    net = betaprop.Network(
        workload.sizes,
        workload.activation,
        loss="cross_entropy",
        dtype="float32",
        seed=0,
        normalization="batch" if variant == "batch_norm" else None,
        dropout=DROPOUT if variant == "dropout" else 0.0,
    )
    return fit_epoch(net, X, one_hot(labels, workload.sizes[-1]), workload.batch_size)


def torch_epoch(variant: str, X: np.ndarray, labels: np.ndarray) -> Epoch:
    """PyTorch's epoch (``nn.Sequential`` + ``torch.optim.SGD``) on the same network."""
    import torch

    torch.manual_seed(0)
    workload = WORKLOADS["deep"]
    sizes, layers = workload.sizes, []
    for q in range(1, len(sizes)):
        layers.append(torch.nn.Linear(sizes[q - 1], sizes[q]))
        if q < len(sizes) - 1:
            if variant == "batch_norm":
                layers.append(torch.nn.BatchNorm1d(sizes[q]))
            layers.append(torch.nn.Tanh())
            if variant == "dropout":
                layers.append(torch.nn.Dropout(DROPOUT))
    model = torch.nn.Sequential(*layers).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    criterion = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(0)
    n, batch_size = len(X), workload.batch_size

    def epoch() -> None:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2 and variant == "batch_norm":
                continue  # BatchNorm1d refuses a batch of one in training
            optimizer.zero_grad(set_to_none=True)
            criterion(model(Xt[idx]), yt[idx]).backward()
            optimizer.step()

    return epoch


def measure(
    epochs: dict[Key, Epoch], rounds: int, clock: Callable[[], float] = time.perf_counter
) -> dict[Key, list[float]]:
    """Seconds of each epoch per round: one warm-up call each, then ``rounds`` rounds in
    which every epoch runs once, the order rotated by one each round (interleaved)."""
    keys = list(epochs)
    for key in keys:
        epochs[key]()  # warm-up: buffers, thread pools, caches
    times: dict[Key, list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            start = clock()
            epochs[key]()
            times[key].append(clock() - start)
    return times


def summarize(times: dict[Key, Sequence[float]]) -> list[dict[str, Any]]:
    """Per (library, variant): the median epoch and its ratio to the library's plain median."""
    rows = []
    for library in LIBRARIES:
        plain = statistics.median(times[(library, "plain")])
        for variant in VARIANTS:
            if (library, variant) not in times:
                continue
            median = statistics.median(times[(library, variant)])
            rows.append(
                {"library": library, "variant": variant, "median": median, "ratio": median / plain}
            )
    return rows


def verdicts(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Per variant other than plain: whether betaprop's ratio is no worse than PyTorch's."""
    ratio = {(row["library"], row["variant"]): row["ratio"] for row in rows}
    return {
        variant: ratio[("betaprop", variant)] <= ratio[("torch", variant)]
        for variant in VARIANTS[1:]
        if ("betaprop", variant) in ratio and ("torch", variant) in ratio
    }


def render(rows: list[dict[str, Any]], heading: str) -> str:
    """The table as Markdown: library, network, median epoch (ms), ratio to plain."""
    lines = [heading, "", "| library | network | median epoch (ms) | ratio to own plain |",
             "|---|---|---:|---:|"]  # fmt: skip
    for row in rows:
        lines.append(
            f"| {row['library']} | {row['variant']} | {1e3 * row['median']:.1f} | "
            f"{row['ratio']:.2f} |"
        )
    lines.append("")
    for variant, ok in verdicts(rows).items():
        word = "no worse than" if ok else "worse than"
        lines.append(f"- {variant}: betaprop's ratio {word} PyTorch's")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="all 8,192 examples")
    args = parser.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    n = None if args.full else QUICK_N["deep"]
    X, labels = load(WORKLOADS["deep"], n)
    epochs: dict[Key, Epoch] = {}
    for variant in VARIANTS:
        epochs[("betaprop", variant)] = betaprop_epoch(variant, X, labels)
        epochs[("torch", variant)] = torch_epoch(variant, X, labels)
    with threadpool_limits(limits=args.threads):
        times = measure(epochs, args.rounds)
    heading = (
        f"## deep workload ({len(X)} examples, batch {WORKLOADS['deep'].batch_size}, "
        f"dropout {DROPOUT}), {args.threads} thread(s), medians of {args.rounds} "
        "interleaved rounds"
    )
    print(render(summarize(times), heading))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
