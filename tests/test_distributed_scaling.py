"""The scaling benchmark's model and measurement (benchmarks/distributed.py, issue 25): the
model's terms behave as stated in docs/distributed.md, and one process's measurement yields
every figure the model needs (the K = 2 half runs under mpiexec in the benchmark itself)."""

from __future__ import annotations

import pytest

from benchmarks.distributed import NETWORKS, allreduce_time, efficiency, measure

# docs/distributed.md's measured figures (load 7-8 on 2 cores)
FIGURES = {"params": 235146, "n": 8192, "n_val": 2048, "t0": 2.38e-4, "tc": 2.435e-5, "v": 9.6e-6}


@pytest.mark.parametrize("network", list(NETWORKS))
def test_the_model_gives_one_node_full_efficiency_and_falls_with_nodes(network):
    assert efficiency(FIGURES, 1024, 1, network) == pytest.approx(1.0)
    cells = [efficiency(FIGURES, 1024, k, network) for k in (2, 8, 16, 32, 64)]
    assert cells == sorted(cells, reverse=True)
    assert efficiency(FIGURES, 1024, 16, network, sharded=False) < cells[2]


def test_the_docs_table_is_the_model_on_the_measured_figures():
    # docs/distributed.md: InfiniBand EDR, B = 1024: 81 % at K = 16, 39 % without sharding
    assert round(efficiency(FIGURES, 1024, 16, "InfiniBand EDR"), 2) == 0.81
    assert round(efficiency(FIGURES, 1024, 16, "InfiniBand EDR", sharded=False), 2) == 0.39
    assert round(efficiency(FIGURES, 1024, 16, "10 GbE"), 2) == 0.46


def test_the_all_reduce_costs_nothing_alone_and_more_with_nodes():
    alpha, bandwidth = NETWORKS["10 GbE"]
    assert allreduce_time(1000, 1, alpha, bandwidth) == 0.0
    assert allreduce_time(1000, 2, alpha, bandwidth) < allreduce_time(1000, 16, alpha, bandwidth)


def test_one_process_measures_every_figure_the_model_needs():
    result = measure(n=256, n_val=64, batch=32)
    for key in ("samples_per_s", "step_small", "step_batch", "with_validation"):
        assert result[key] > 0
    assert result["validation_alone"] > 0 and result["params"] == 235146
