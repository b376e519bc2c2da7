"""README.md cannot rot silently: every code block in it runs (or at least parses).

- ```` ```python ```` blocks run in order, in one namespace, in a temporary folder, as a reader
  pasting them into one session would.
- ```` ```bash ```` blocks: every ``betaprop ...`` line must parse with the real argument parser;
  the cheap ones run, in order, in one temporary folder (so ``info`` can read the model that
  ``train`` wrote just above it). The full ``betaprop train`` (no ``--epochs``) only parses.
  Other lines must be one of the known set-up and development commands.
- The README opens with exactly the two set-up commands.

The pages of docs/ that the README links to (all but docs/algorithm.md, which
tests/test_docs.py covers) follow the same rules, except that their commands only parse.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .test_docs import Block, _blocks

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCKS = _blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.info == "python"]
BASH = [b for b in BLOCKS if b.info == "bash"]
SETUP = [
    "pip install -e . && betaprop train                               "
    "# install, then train on the embedded digits data",
    'pip install -e ".[test]" -c constraints.txt && python -m pytest  '
    "# install the pinned test tools, then run the tests",
]
# commands other than `betaprop` that the README may show (they are not run here)
OTHER_COMMANDS = ("pip install", "python -m pytest", "ruff check", "ruff format", "mypy")
# the longest `train` that runs here; longer ones only parse
MAX_EPOCHS_RUN = 10
# `betaprop` run in a subprocess with this interpreter, whatever is on PATH
BETAPROP = [sys.executable, "-c", "import sys; from betaprop.cli import main; sys.exit(main())"]


DOCS = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "algorithm.md")


def _commands(block: Block) -> list[str]:
    """The block's commands: one per line (a trailing backslash continues it), comments and
    blank lines dropped, `&&` split."""
    commands: list[str] = []
    for line in block.text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        command: list[str] = []
        for word in words + ["&&"]:
            if word == "&&":
                commands.append(shlex.join(command))
                command = []
            else:
                command.append(word)
    return commands


def _runs(argv: list[str]) -> bool:
    """Whether a parsed `betaprop` command is cheap enough to run here."""
    if argv[0] != "train":
        return argv[0] in ("trace", "gradcheck", "info", "predict", "evaluate")
    if "--epochs" not in argv:
        return False
    return int(argv[argv.index("--epochs") + 1]) <= MAX_EPOCHS_RUN


def test_the_readme_opens_with_the_two_setup_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    first = BLOCKS[0]
    assert first.info == "bash" and first.text.splitlines() == SETUP, (
        "README.md must open with the two set-up commands, one bash block:\n" + "\n".join(SETUP)
    )
    assert first.line <= 5, f"the set-up block must be on the first screen, got line {first.line}"
    assert lines[0] == "# betaprop"


def test_the_readme_has_runnable_examples() -> None:
    assert len(PYTHON) >= 2, "README.md lost its Python examples"
    assert len(BASH) >= 2, "README.md lost its command-line examples"
    kinds = {b.info for b in BLOCKS}
    assert kinds <= {"python", "bash"}, f"README.md blocks of unknown kind: {kinds}"


def test_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write files
    namespace: dict[str, object] = {"__name__": "readme_md"}
    for block in PYTHON:
        code = compile(block.text, f"{README.name}:{block.line}", "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)


def _parses(parser: object, command: str, where: str) -> None:
    try:
        parser.parse_args(shlex.split(command)[1:])  # type: ignore[attr-defined]
    except (SystemExit, Exception) as error:  # argparse exits on a bad option
        pytest.fail(f"{where}: `{command}` does not parse: {error!r}")


def test_bash_blocks_parse_and_the_cheap_commands_run(tmp_path: Path) -> None:
    from betaprop.cli import build_parser

    parser = build_parser()
    ran = 0
    for block in BASH:
        for command in _commands(block):
            words = shlex.split(command)
            if words[0] != "betaprop":
                assert command.startswith(OTHER_COMMANDS), (
                    f"{README.name}:{block.line}: unknown command {command!r}"
                )
                continue
            _parses(parser, command, f"{README.name}:{block.line}")
            if not _runs(words[1:]):
                continue
            result = subprocess.run(
                BETAPROP + words[1:], cwd=tmp_path, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, (
                f"{README.name}:{block.line}: `{command}` exited with {result.returncode}:\n"
                + result.stderr[-2000:]
            )
            ran += 1
    assert ran >= 3, "README.md runs fewer than 3 betaprop commands"


def test_the_readme_links_every_docs_page() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [p.name for p in DOCS if f"(docs/{p.name})" not in text]
    assert not missing, f"README.md links to no section for docs/{missing}"


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_docs_pages_commands_parse_and_python_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from betaprop.cli import build_parser

    parser = build_parser()
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": page.stem}
    for block in _blocks(page.read_text(encoding="utf-8")):
        where = f"docs/{page.name}:{block.line}"
        if block.info == "bash":
            for command in _commands(block):
                if command.startswith("betaprop"):
                    _parses(parser, command, where)
        elif block.info == "python":
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(block.text, where, "exec"), namespace)


def test_the_test_environment_is_pinned_and_ci_installs_it_as_the_readme_does() -> None:
    """constraints.txt pins every package pyproject.toml names (the core and every extra), at
    a version inside pyproject's bounds; .ci/run installs with the README's command."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    from packaging.requirements import Requirement  # packaging: a dependency of pytest
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    named = [Requirement(r) for r in project["dependencies"]]
    named += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    for requirement in named:
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"constraints.txt does not pin {requirement.name}"
        assert requirement.specifier.contains(version), f"{requirement}: pinned {version}"
    install = SETUP[1].split("&&")[0].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install.replace("pip install", "pip install --quiet") in ci
