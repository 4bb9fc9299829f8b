"""Synthetic SWE-bench instances: a tiny installable package with a bug, an issue, a test patch that
adds the failing tests and a gold patch, in SWE-bench's JSONL format, with a bare mirror under a repo
cache as `owner__name`. Used by the bench tests and by bench/swebench.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import call, turn

REPO = "acme/shapes"
PROBLEM = "perimeter() returns half the perimeter: perimeter(2, 3) gives 5, it should give 10."

FILES = {
    "pyproject.toml": """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "shapes"
version = "0.1.0"

[tool.setuptools]
packages = ["shapes"]
""",
    "shapes/__init__.py": '''def area(w, h):
    """Area of a w x h rectangle."""
    return w * h


def perimeter(w, h):
    """Perimeter of a w x h rectangle."""
    return w + h
''',
    "tests/test_shapes.py": """from shapes import area, perimeter


def test_area():
    assert area(2, 3) == 6


def test_perimeter_zero():
    assert perimeter(0, 0) == 0
""",
    ".gitignore": "*.egg-info/\n__pycache__/\n",
}

SHAPES = FILES["shapes/__init__.py"]
TESTS = FILES["tests/test_shapes.py"]
# each change as the files it rewrites; make_mirror turns them into real `git diff` patches
CHANGES = {
    "test_patch": {
        "tests/test_shapes.py": TESTS
        + "\n\ndef test_perimeter():\n    assert perimeter(2, 3) == 10\n"
        + "\n\ndef test_perimeter_square():\n    assert perimeter(1, 1) == 4\n"
    },
    "gold": {"shapes/__init__.py": SHAPES.replace("return w + h", "return 2 * (w + h)")},
    # fixes one of the two F2P tests: graded partial
    "partial": {
        "shapes/__init__.py": SHAPES.replace("return w + h", "return 2 * (w + h) if w != h else w + h")
    },
    # fixes perimeter, breaks area (a P2P test): graded unresolved
    "breaks_p2p": {
        "shapes/__init__.py": SHAPES.replace("return w + h", "return 2 * (w + h)").replace(
            "return w * h", "return w * h + 1"
        )
    },
}
MALFORMED = (
    "diff --git a/shapes/__init__.py b/shapes/__init__.py\n--- a/shapes/__init__.py\n+++ b/x\n@@ garbage\n"
)


def fuzzy(gold: str) -> str:
    """The gold fix with a context line that is not in the file: git apply refuses it, patch --fuzz not."""
    return gold.replace(
        '     """Perimeter of a w x h rectangle."""', '     """Perimeter of a rectangle (old)."""'
    )


# the agent's edit in a scripted run
FIX = {
    "command": "str_replace",
    "path": "shapes/__init__.py",
    "old_str": "    return w + h",
    "new_str": "    return 2 * (w + h)",
}

F2P = ["tests/test_shapes.py::test_perimeter", "tests/test_shapes.py::test_perimeter_square"]
P2P = ["tests/test_shapes.py::test_area", "tests/test_shapes.py::test_perimeter_zero"]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_mirror(root: Path) -> tuple[Path, str, dict[str, str]]:
    """(repo cache holding acme__shapes, base commit, patches by name: test_patch, gold, partial,
    breaks_p2p). A later commit (the "future") exists in the mirror too."""
    src = root / "shapes-src"
    src.mkdir(parents=True)
    for rel, text in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    _git(src, "init", "-q", "-b", "main")
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "shapes")
    base = _git(src, "rev-parse", "HEAD").strip()
    patches = {}
    for name, files in CHANGES.items():
        for rel, text in files.items():
            (src / rel).write_text(text)
        patches[name] = _git(src, "diff")
        _git(src, "checkout", "-q", "--", ".")
    (src / "NEWS").write_text("fixed perimeter\n")
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "the future")
    cache = root / "cache"
    cache.mkdir()
    subprocess.run(["git", "clone", "-q", "--mirror", str(src), str(cache / "acme__shapes")], check=True)
    return cache, base, patches


def instance(iid: str, base: str, patches: dict[str, str], **extra: Any) -> dict[str, Any]:
    row = {
        "instance_id": iid,
        "repo": REPO,
        "base_commit": base,
        "problem_statement": PROBLEM,
        "hints_text": "SECRET HINT",
        "patch": patches["gold"],
        "test_patch": patches["test_patch"],
        "FAIL_TO_PASS": json.dumps(F2P),
        "PASS_TO_PASS": json.dumps(P2P),
        "version": "0.1",
        "environment_setup_commit": base,
    }
    row.update(extra)
    return row


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def predictions(path: Path, patches: dict[str, str | None], model: str = "m") -> Path:
    rows = [{"instance_id": i, "model_name_or_path": model, "model_patch": p} for i, p in patches.items()]
    return write_jsonl(path, rows)


def agent_turn(body: dict[str, Any]) -> dict[str, Any]:
    """A scripted model turn: run a command in the instance's environment, fix, finish; whatever the
    interleaving of concurrent instances (it reads only its own conversation)."""
    tools_seen = sum(m.get("role") == "tool" for m in body.get("messages", []))
    if tools_seen == 0:
        return turn(
            call("execute_bash", {"command": "python -c 'import shapes, sys; print(shapes.__file__)'"})
        )
    if tools_seen == 1:
        return turn(call("str_replace_editor", FIX))
    return turn(call("finish", {"message": "perimeter() doubles now."}))
