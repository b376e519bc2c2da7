"""A CSV plan made by K ranks together (files/csv_plan.py, files/csv_scan.py) is the plan one
process makes scanning the whole file (files/parts.py's own scan, a separate implementation):
for generated files (quoted line breaks, CRLF, BOM, blank lines, no final line feed, files
that parity cannot split), any K, any part size and any piece size; and under real mpiexec.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from betaprop.files import csv_plan
from betaprop.files import parts as parts_module
from betaprop.files.csv_scan import assemble
from betaprop.files.errors import DataError
from betaprop.files.parts import Part, header_end, parts_of, plan_parts
from betaprop.files.reading import read_table

sys.path.insert(0, str(Path(__file__).parent))
from test_distributed import ranks  # noqa: E402
from test_parts import _csv_text  # noqa: E402


def plan_by(k: int, path: str, part_bytes: int, sep: str = ",") -> list[Part]:
    """What ``plan_csv_ranks`` computes on k ranks, each rank's scan run here in turn."""
    with open(path, "rb") as handle:
        size = len(handle.read())
        handle.seek(0)
        header = header_end(handle, size, sep)
        if header is None:
            return [Part(0, "csv", 0, None, 0, None)]
        if header >= size:
            raise DataError(f"{path} has a header row but no data rows")
        scans = [csv_plan.scan_range(handle, size, sep, part_bytes, header, r, k)
                 for r in range(k)]  # fmt: skip
    cuts = assemble(header, size, scans)
    return [Part(0, "csv", 0, None, 0, None)] if cuts is None else parts_of(cuts, header, path)


@pytest.mark.parametrize("seed", range(16))
def test_k_ranges_give_the_one_process_plan(tmp_path, seed, monkeypatch):
    rng = np.random.default_rng(seed)
    path = str(tmp_path / "data.csv")
    text = _csv_text(rng, int(rng.integers(1, 80)))
    if seed % 5 == 4:
        text = text.replace("say", 'sa"y', 1)  # a stray quote: one part, whatever K
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    if seed % 3 == 0:  # pieces that cut quotes, CR LF and records
        monkeypatch.setattr(csv_plan, "_SCAN", int(rng.integers(1, 9)))
    for part_bytes in (1, 5, 37, 200, 10**6):
        one = plan_parts(path, part_bytes=part_bytes)
        for k in (1, 2, 3, 5, 8):
            assert plan_by(k, path, part_bytes) == one, (k, part_bytes)


@pytest.mark.parametrize("body", ["a,b\n", "a,b\n\n \n", "a,b"])
def test_no_rows_is_refused_by_ranks_as_by_one_process(tmp_path, body):
    path = str(tmp_path / "empty.csv")
    Path(path).write_text(body)
    for k in (1, 3):
        with pytest.raises(DataError, match="has a header row but no data rows"):
            plan_by(k, path, 2)


WORKER = """
import json, sys
from mpi4py import MPI
from betaprop.files.agreement import Agreement
from betaprop.files.parts import plan_parts

out, sizes, paths = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], sys.argv[3:]
agreement = Agreement(MPI.COMM_WORLD)
plans = [[[p.start, p.stop, p.first_row, p.rows] for p in plan_parts(path, part_bytes=b,
          agreement=agreement)] for path in paths for b in sizes]
with open(f"{out}.{agreement.rank}", "w") as handle:
    json.dump(plans, handle)
"""


@pytest.mark.parametrize("k", [2, 3])
def test_ranks_under_mpiexec_plan_as_one_process(tmp_path, k):
    paths = []
    for seed in range(4):
        path = str(tmp_path / f"data{seed}.csv")
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(_csv_text(np.random.default_rng(100 + seed), 60))
        paths.append(path)
    sizes = [7, 300, 10**6]
    out = str(tmp_path / "plans")
    done = ranks(k, "-c", WORKER, out, ",".join(map(str, sizes)), *paths)
    assert done.returncode == 0, done.stderr
    want = [[[p.start, p.stop, p.first_row, p.rows] for p in plan_parts(path, part_bytes=b)]
            for path in paths for b in sizes]  # fmt: skip
    for r in range(k):
        assert json.loads(Path(f"{out}.{r}").read_text()) == want
    assert parts_module.plan_parts is plan_parts


def test_a_record_longer_than_several_ranges_is_counted_once(tmp_path):
    """Its text begins in one range; the ranges after it hold only its trailing blanks."""
    path = str(tmp_path / "long.csv")
    Path(path).write_text("a,b\n1,2\nx," + " " * 300 + "\n3,4\n" + "\t" * 50 + "\n5,6")
    one = plan_parts(path, part_bytes=16)
    assert sum(p.rows for p in one) == len(read_table(path)) == 4
    for k in (2, 3, 8, 30):
        assert plan_by(k, path, 16) == one
