"""The parent side: start a child process per measurement and interleave their epochs.

Children run ``benchmarks.workers.worker`` with ``sys.executable -c``; the folder that holds
the ``benchmarks`` package goes first on their ``sys.path``, so they find it from any
working directory. betaprop is whatever the child's Python imports (``compare`` sets
``PYTHONPATH`` to pick a source tree).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.workers import READY

ROOT = str(Path(__file__).resolve().parents[1])  # the folder that holds benchmarks/
# Pause after each timed epoch: OpenBLAS's workers spin ~0.1 s after their last call.
SETTLE = 0.25


def child_command(task: dict[str, Any], module: str = "benchmarks.workers") -> list[str]:
    """The command line of a child that runs ``module.worker(task)`` and prints its JSON."""
    code = (
        f"import json, sys; sys.path.insert(0, {ROOT!r}); from {module} import worker; "
        "print('\\n' + json.dumps(worker(json.loads(sys.argv[1]))))"
    )
    return [sys.executable, "-c", code, json.dumps(task)]


def start(task: dict[str, Any], env: Mapping[str, str] | None = None, **options: Any) -> Any:
    """Start a serving child (see ``workers.serve``) and wait until it is ready.

    Returns (child, its first READY line), or (None, the last line of its stderr).
    """
    child = subprocess.Popen(
        child_command(task, **options),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
    )
    ready = read_ready(child)
    if ready is None:
        return None, child_error(child)
    return child, ready


def request(child: subprocess.Popen, line: str = "epoch") -> str | None:
    """Ask a serving child for one more measurement; returns its READY line (None if gone)."""
    if child.poll() is not None:
        return None
    assert child.stdin is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()
    return read_ready(child)


def finish(child: subprocess.Popen) -> dict[str, Any]:
    """Tell a serving child to stop and return its JSON result (or {"error": last line})."""
    out, err = child.communicate("done\n")
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        return {"error": (err.strip().splitlines() or ["(no output)"])[-1]}
    return dict(json.loads(lines[-1]))


def interleaved(tasks: dict[str, dict[str, Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Time ``repeats`` epochs of every contender, round-robin, each in its own process.

    Every child builds its model and runs a warm-up epoch, then times one epoch each time
    it is asked; the order of the contenders rotates from round to round.
    """
    children: dict[str, subprocess.Popen] = {}
    failed: dict[str, dict[str, Any]] = {}
    for name, task in tasks.items():
        child, ready = start(task)
        if child is None:
            failed[name] = {"error": ready}
        else:
            children[name] = child
    names = list(children)
    for round_ in range(repeats):
        shift = round_ % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            request(children[name])
            time.sleep(SETTLE)
    results = {name: finish(child) for name, child in children.items()}
    return {**failed, **results}


def read_ready(child: subprocess.Popen) -> str | None:
    """The child's next READY line, skipping anything else it prints; None at its end."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(READY):
            return line
    return None


def child_error(child: subprocess.Popen) -> str:
    """The last line of a failed child's stderr."""
    _, err = child.communicate()
    return (err.strip().splitlines() or ["(no output)"])[-1]


def spawn(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``worker(task)`` in a fresh Python process and return its result."""
    done = subprocess.run(child_command(task), capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": last}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
