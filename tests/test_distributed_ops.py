"""Running under launchers (issue 25): unconnected launches, the rank in error lines, BLAS
threads from the CPUs a rank may use, the memory pre-check per node.

Real processes: ``mpiexec -n 2`` from the mpich wheel, and ``python -m betaprop`` with the
variables srun sets (a Slurm job step of 4 tasks started without ``--mpi``: each task's
MPI is a singleton, COMM_WORLD of size 1).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from betaprop.training.distributed import blas_threads

from .test_distributed import MPIEXEC, TIMEOUT

pytest.importorskip("mpi4py")

ROOT = str(Path(__file__).parents[1])
TRAIN = ["train", "--data", "moons", "--epochs", "1", "--hidden", "4", "--quiet"]


def environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "SLURM_", "OMPI_"))}
    return dict(env, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **variables)


def python(args: list[str], cwd: Path, **variables: str) -> subprocess.CompletedProcess:
    command = [sys.executable, *args]
    env = environment(**variables)
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, env=env
    )


def mpiexec(k: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    assert MPIEXEC is not None, "mpiexec not found: pip install -e '.[mpi]'"
    command = [MPIEXEC, "-n", str(k), sys.executable, "-m", "mpi4py", *args]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, env=environment()
    )


@pytest.mark.parametrize(
    "variables",
    [
        {"SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4", "SLURM_PROCID": "2"},  # srun -n 4
        {"OMPI_COMM_WORLD_SIZE": "3"},  # Open MPI's mpirun around mpi4py built for MPICH
    ],
)
def test_an_unconnected_launch_is_refused_with_one_line_naming_the_fix(tmp_path, variables):
    done = python(["-m", "betaprop", *TRAIN, "--out", "run"], tmp_path, **variables)
    assert done.returncode == 2, done.stderr
    # (mpi4py may add its own warning about a foreign launcher's variables)
    lines = [line for line in done.stderr.splitlines() if line.startswith("betaprop")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("betaprop: error: started as one of ")
    assert "MPI sees this process alone" in lines[0] and "srun --mpi=pmix" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
    if "SLURM_STEP_NUM_TASKS" in variables:  # the way out for a sweep of separate runs
        assert "(separate runs in each task, no MPI: env -u SLURM_STEP_NUM_TASKS" in lines[0]


def test_fit_with_comm_world_in_an_unconnected_launch_is_refused(tmp_path):
    script = (
        "import numpy as np; from mpi4py import MPI; import betaprop as bp\n"
        "net = bp.Network([2, 3, 1], seed=0)\n"
        "try:\n"
        "    bp.fit(net, np.zeros((8, 2)), np.zeros((8, 1)), comm=MPI.COMM_WORLD)\n"
        "except bp.training.distributed.LaunchError as error:\n"
        "    print('refused:', error)\n"
    )
    done = python(["-c", script], tmp_path, SLURM_STEP_NUM_TASKS="2")
    assert done.returncode == 0, done.stderr
    assert "refused: started as one of 2 processes (SLURM_STEP_NUM_TASKS=2)" in done.stdout


def test_a_batch_script_alone_is_not_a_launch(tmp_path):
    """SLURM_NTASKS is set in a batch script too, which runs once: one process is legal."""
    done = python(["-m", "betaprop", *TRAIN, "--out", "run"], tmp_path, SLURM_NTASKS="4")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run").is_dir()


def test_every_error_line_names_its_rank(tmp_path):
    done = mpiexec(2, ["-m", "betaprop", "train", "--data", "missing.csv"], tmp_path)
    assert done.returncode != 0
    # the first rank to fail aborts the other, which may not have printed yet; mpiexec may
    # interleave two ranks' lines, so the lines are found in the whole text
    named = re.findall(r"betaprop: rank [01]: error: data file 'missing.csv' does not exist",
                       done.stderr)  # fmt: skip
    assert named, done.stderr
    assert "betaprop: error:" not in done.stderr, done.stderr  # no error line without its rank


def test_the_memory_check_counts_every_rank_on_the_node(tmp_path):
    """Each rank asks for 0.6 of the node's available memory: alone it passes, two ranks on
    one node need 1.2 and are refused, each with a line naming the ranks. (The available
    memory is fixed at 1 GB: other jobs on this machine change the real one.)"""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from betaprop.cli import memory\n"
        "from betaprop.cli.options import UserError\n"
        "memory.available_bytes = lambda: 10**9\n"
        "try:\n"
        "    memory.require_memory('--hidden 8', 6 * 10**8, 'a test')\n"
        "    said = 'passed'\n"
        "except UserError as error:\n"
        "    said = f'refused: {error}'\n"
        "rank = os.environ.get('PMI_RANK', 'alone')\n"  # a file each: no interleaved lines
        "with open(f'{rank}.txt', 'w') as out: out.write(said)\n"
    )
    script = "import os\n" + script
    alone = python(["-m", "mpi4py", "-c", script, ROOT], tmp_path)
    assert alone.returncode == 0, alone.stderr
    assert (tmp_path / "alone.txt").read_text() == "passed"
    two = mpiexec(2, ["-c", script, ROOT], tmp_path)
    assert two.returncode == 0, two.stderr
    for rank in (0, 1):
        said = (tmp_path / f"{rank}.txt").read_text()
        assert said.startswith("refused: --hidden 8 needs about 572.2 MiB of memory per rank")
        assert "the 2 ranks on this node need 1.1 GiB, more than the 953.7 MiB" in said


def test_pinned_ranks_use_their_own_cpus():
    # srun --cpu-bind=cores / mpiexec -bind-to: 4 ranks, 8 CPUs each, disjoint
    sets = [set(range(8 * r, 8 * r + 8)) for r in range(4)]
    assert [blas_threads(mine, sets) for mine in sets] == [8, 8, 8, 8]


def test_unpinned_ranks_share_the_cpus_they_may_all_use():
    node = set(range(32))
    assert blas_threads(node, [node] * 4) == 8
    assert blas_threads(node, [node] * 64) == 1  # never 0


def test_partly_overlapping_sets_divide_among_the_ranks_they_meet():
    a, b, c = set(range(8)), set(range(4, 12)), set(range(16, 24))
    assert blas_threads(a, [a, b, c]) == 4
    assert blas_threads(c, [a, b, c]) == 8


def _group(folder: Path, limit: str, usage: int, inactive: int = 0, v1: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = (
        ("memory.limit_in_bytes", "memory.usage_in_bytes")
        if v1
        else ("memory.max", "memory.current")
    )
    (folder / names[0]).write_text(f"{limit}\n")
    (folder / names[1]).write_text(f"{usage}\n")
    key = "total_inactive_file" if v1 else "inactive_file"
    (folder / "memory.stat").write_text(f"anon 5\n{key} {inactive}\n")


def test_a_batch_jobs_memory_limit_bounds_the_available_memory(tmp_path):
    """Slurm confines a job to a control group: its limit, not the machine's free memory,
    is what the ranks of the node share. The tightest group on the way up counts, and the
    inactive file cache (which the kernel reclaims first) is not counted as used."""
    from betaprop.cli.memory import cgroup_bytes

    table = tmp_path / "cgroup"
    table.write_text("0::/slurm/job_7/step_0\n")
    _group(tmp_path / "slurm", "max", 10**12)
    _group(tmp_path / "slurm" / "job_7", str(8 * 2**30), 3 * 2**30, inactive=2**30)  # job
    _group(tmp_path / "slurm" / "job_7" / "step_0", "max", 2**30)  # step: no limit of its own
    assert cgroup_bytes(str(tmp_path), str(table)) == 6 * 2**30  # 8 - (3 - 1) GiB

    (tmp_path / "v1").mkdir()
    table.write_text("4:memory:/job_7\n3:cpuset:/\n")
    _group(tmp_path / "v1" / "memory", "9223372036854771712", 10**9, v1=True)  # no limit
    _group(tmp_path / "v1" / "memory" / "job_7", str(2**30), 2**29, inactive=2**28, v1=True)
    assert cgroup_bytes(str(tmp_path / "v1"), str(table)) == 2**30 - 2**28

    table.write_text("0::/\n")  # no limit anywhere: None, and the machine's figure stands
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("5\n")
    assert cgroup_bytes(str(tmp_path), str(table)) is None
