"""docs/algorithm.md cannot rot silently: its code runs and its quotes match the source.

Conventions of the document (stated at its top):

- A fenced block opened with exactly ```` ```python ```` is runnable. All runnable blocks
  run in order, in one namespace, as a reader pasting them into one session would.
- A ```` ```text output ```` block directly after a runnable block is what that block
  prints; it must equal the captured output (trailing spaces ignored).
- A block opened with ```` ```python quote=src/betaprop/FILE.py:QUALNAME ```` quotes real
  code from the function or method QUALNAME of that file (``quote=FILE`` alone: from the
  module at large). Every quoted line must be a line of that function, in the same order;
  consecutive quoted lines must be consecutive in the source, and a line ``...`` marks an
  elision. Lines are compared with their indentation and a trailing
  ``# type: ignore[...]`` comment stripped, blank lines skipped. The line of text just
  above the block must name the file and the function, so the reader sees where it is.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "algorithm.md"
ENGINE_FILES = (
    "network.py",
    "activations.py",
    "losses.py",
    "optimizers.py",
    "loop.py",
    "reference.py",
)
NOT_YET_MARKER = "Status: designed, not yet in the engine"
_TYPE_IGNORE = re.compile(r"\s*# type: ignore(\[[^\]]*\])?\s*$")


@dataclass(frozen=True)
class Block:
    info: str  # the fence's info string, e.g. "python" or "python quote=..."
    text: str
    line: int  # 1-based line number of the opening fence
    caption: str  # the last non-blank line of text above the fence


def _blocks(markdown: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    caption = ""
    while i < len(lines):
        opening = re.match(r"^(`{3,})(.*)$", lines[i])
        if opening is None:
            if lines[i].strip():
                caption = lines[i].strip()
            i += 1
            continue
        fence, info, start = opening.group(1), opening.group(2).strip(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{DOC.name}:{start + 1}: fence {fence}{info} is never closed")
        blocks.append(Block(info, "\n".join(body) + "\n", start + 1, caption))
        caption = ""
        i += 1
    return blocks


BLOCKS = _blocks(DOC.read_text(encoding="utf-8"))
RUNNABLE = [b for b in BLOCKS if b.info == "python"]
QUOTES = [b for b in BLOCKS if b.info.startswith("python quote=")]


def _normalised(line: str) -> str:
    return _TYPE_IGNORE.sub("", line).strip()


def _source_lines(path: Path, qualname: str | None) -> list[str]:
    """The non-blank, normalised lines of a function (or of the whole file)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    if qualname is not None:
        node: ast.AST = ast.parse(source)
        for part in qualname.split("."):
            found = [
                child
                for child in ast.iter_child_nodes(node)
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and child.name == part
            ]
            assert found, f"{path.name} has no {qualname} (missing {part!r})"
            node = found[0]
        assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        lines = lines[first - 1 : node.end_lineno]
    return [_normalised(line) for line in lines if line.strip()]


def _segments(quote: str) -> list[list[str]]:
    """The quoted lines, split at elision lines ``...`` into runs that must be contiguous."""
    segments: list[list[str]] = [[]]
    for line in quote.splitlines():
        if line.strip() == "...":
            segments.append([])
        elif line.strip():
            segments[-1].append(_normalised(line))
    return [segment for segment in segments if segment]


def _find(segment: list[str], lines: list[str], start: int) -> int:
    """Index just past the first contiguous occurrence of ``segment`` at or after ``start``."""
    for i in range(start, len(lines) - len(segment) + 1):
        if lines[i : i + len(segment)] == segment:
            return i + len(segment)
    return -1


def test_the_document_has_runnable_code_and_quotes_of_every_engine_file() -> None:
    assert len(RUNNABLE) >= 3, "docs/algorithm.md lost its runnable examples"
    kinds = {b.info.split()[0] for b in BLOCKS if b.info.startswith("python")}
    assert kinds == {"python"}, f"unknown python block kinds: {kinds}"
    odd = [b for b in BLOCKS if b.info.startswith("python") and b not in RUNNABLE + QUOTES]
    assert not odd, f"python blocks that are neither runnable nor quotes: {odd}"
    quoted = {Path(b.info.split("=", 1)[1].split(":")[0]).name for b in QUOTES}
    missing = set(ENGINE_FILES) - quoted
    assert not missing, f"the walkthrough quotes no line of {sorted(missing)}"


@pytest.mark.parametrize(
    "block", QUOTES, ids=[f"line{b.line}-{b.info.split('=', 1)[1]}" for b in QUOTES]
)
def test_quoted_code_is_verbatim_in_its_source(block: Block) -> None:
    target = block.info.split("=", 1)[1]
    relative, _, qualname = target.partition(":")
    path = ROOT / relative
    assert path.is_file(), f"{DOC.name}:{block.line}: {relative} does not exist"
    assert path.name in block.caption, (
        f"{DOC.name}:{block.line}: the text above the quote must name {path.name}, "
        f"got {block.caption!r}"
    )
    if qualname:
        assert qualname in block.caption, (
            f"{DOC.name}:{block.line}: the text above the quote must name {qualname}, "
            f"got {block.caption!r}"
        )
    lines = _source_lines(path, qualname or None)
    cursor = 0
    segments = _segments(block.text)
    assert segments, f"{DOC.name}:{block.line}: empty quote"
    for segment in segments:
        end = _find(segment, lines, cursor)
        assert end >= 0, (
            f"{DOC.name}:{block.line}: these lines are not (or no longer) consecutive lines "
            f"of {relative}:{qualname or '<module>'} after the previous quoted ones:\n"
            + "\n".join(segment)
            + "\nIf the engine changed on purpose, update this quote in docs/algorithm.md."
        )
        cursor = end


def test_runnable_blocks_run_and_print_what_the_document_shows() -> None:
    namespace: dict[str, object] = {"__name__": "algorithm_md"}
    for i, block in enumerate(BLOCKS):
        if block not in RUNNABLE:
            continue
        stdout = io.StringIO()
        code = compile(block.text, f"{DOC.name}:{block.line}", "exec")
        with contextlib.redirect_stdout(stdout):
            exec(code, namespace)
        following = BLOCKS[i + 1] if i + 1 < len(BLOCKS) else None
        if following is not None and following.info == "text output":
            shown = [line.rstrip() for line in following.text.rstrip("\n").splitlines()]
            printed = [line.rstrip() for line in stdout.getvalue().rstrip("\n").splitlines()]
            assert printed == shown, (
                f"{DOC.name}:{block.line}: the block prints\n"
                + "\n".join(printed)
                + f"\nbut the document shows (line {following.line})\n"
                + "\n".join(shown)
            )


def test_output_blocks_follow_runnable_blocks() -> None:
    for i, block in enumerate(BLOCKS):
        if block.info == "text output":
            assert i > 0 and BLOCKS[i - 1] in RUNNABLE, (
                f"{DOC.name}:{block.line}: an output block must follow a runnable block"
            )


def test_recompute_status_matches_the_engine() -> None:
    """The doc marks memory="recompute" as not yet implemented only while it is not."""
    import betaprop.engine.workspace as workspace

    implemented = "recompute" in getattr(workspace, "MEMORY", ())
    text = DOC.read_text(encoding="utf-8")
    assert 'memory="recompute"' in text
    if implemented:
        assert NOT_YET_MARKER not in text, (
            'the engine now has memory="recompute": update the section on recomputation'
        )
    else:
        assert NOT_YET_MARKER in text, (
            'the engine has no memory="recompute" yet: the section must say so'
        )


def test_named_test_files_exist() -> None:
    """Every tests/... file that the section on proofs points to is there."""
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"tests/test_\w+\.py", text))
    assert named, "the document points to no test file"
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert not missing, f"docs/algorithm.md points to missing test files: {missing}"
