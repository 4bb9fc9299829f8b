"""`luban demo`: a real agent run on a real bug, with no API key.

It creates a small git repository with a bug and failing tests, then runs the real Session (graph,
tools, trajectory) on it. Only the model's turns come from a bundled recording (`script.jsonl`),
replayed by the same `replay:` model any recorded run can use. The tests are run before and after,
independently of the agent, to show red turning green.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import tempfile
from importlib import resources
from pathlib import Path

REPO_FILES = {
    "README.md": "# textstats\n\nSmall text statistics helpers.\n",
    "textstats/__init__.py": 'from textstats.wordfreq import top_words\n\n__all__ = ["top_words"]\n',
    "textstats/wordfreq.py": '''\
"""Word frequencies."""


def count_words(text: str) -> dict[str, int]:
    """Count words case-insensitively, ignoring surrounding punctuation."""
    counts: dict[str, int] = {}
    for raw in text.split():
        word = raw.strip(".,!?;:\\"'()").lower()
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


def top_words(text: str, n: int = 3) -> list[str]:
    """The n most common words, most common first; ties in alphabetical order."""
    ranked = sorted(count_words(text).items(), key=lambda kv: (kv[1], kv[0]))
    return [word for word, _ in ranked[:n]]
''',
    "tests/test_wordfreq.py": """\
from textstats import top_words
from textstats.wordfreq import count_words


def test_count_words_ignores_case_and_punctuation():
    assert count_words("The cat, the hat.") == {"the": 2, "cat": 1, "hat": 1}


def test_most_common_first():
    assert top_words("b a b c b a", 2) == ["b", "a"]


def test_ties_in_alphabetical_order():
    assert top_words("pear apple pear apple fig", 2) == ["apple", "pear"]


def test_empty_text():
    assert top_words("") == []
""",
    "pyproject.toml": '[project]\nname = "textstats"\nversion = "0.1.0"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["."]\n',
}

# The demo repo has no environment of its own: its tests run on Luban's interpreter, which has pytest.
TEST_COMMAND = (
    f"{shlex.quote(sys.executable)} -m pytest -q -rfE --color=no -p no:cacheprovider -p no:langsmith_plugin"
)

TASK = "The tests in tests/test_wordfreq.py fail: top_words returns the least common words. Fix it."


def create_repo(root: Path) -> None:
    import git

    root.mkdir(parents=True, exist_ok=True)
    for rel, text in REPO_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    repo = git.Repo.init(root)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Luban Demo")
        cw.set_value("user", "email", "demo@luban.invalid")
    repo.git.add("--all")
    repo.git.commit("-m", "textstats: word frequencies", "--no-verify")


async def run_tests(root: Path) -> tuple[bool, str]:
    from tools.base import ToolContext
    from tools.environment import LocalEnvironment
    from tools.testing.run_tests import RunTests

    ctx = ToolContext(root=root, env=LocalEnvironment(root), settings={"test_command": TEST_COMMAND})
    result = await RunTests().run(RunTests.Params(), ctx)
    return result.data.get("failed", 1) == 0 and result.data.get("errors", 0) == 0 and result.data.get(
        "passed", 0
    ) > 0, result.output.splitlines()[0]


def run_demo(directory: Path | None = None, json_output: bool = False) -> int:
    from agent.cli import run_headless
    from agent.config import Settings
    from agent.llm.replay import ReplayModel

    if directory is not None and directory.exists() and any(directory.iterdir()):
        from agent.config import ConfigError

        raise ConfigError(f"--dir {directory}: the directory is not empty; give a new or empty one")
    root = directory or Path(tempfile.mkdtemp(prefix="luban-demo-")) / "textstats"
    create_repo(root)
    say = (lambda *a: None) if json_output else print
    say(f"Demo repository: {root}")
    ok_before, line_before = asyncio.run(run_tests(root))
    say(f"Tests before the run: {line_before}\n")
    script = resources.files("agent.demo").joinpath("script.jsonl")
    with resources.as_file(script) as path:
        settings = Settings(model=f"replay:{path}", max_steps=30, test_command=TEST_COMMAND)
        code = run_headless(settings, root, TASK, json_output=json_output, model=ReplayModel(path))
    ok_after, line_after = asyncio.run(run_tests(root))
    say(f"\nTests before the run: {line_before}")
    say(f"Tests after the run:  {line_after}")
    if ok_after and not ok_before:
        say("Red → green: the agent fixed the bug.")
        return code
    print("luban demo: the tests are not green after the run", file=sys.stderr)
    return code or 1
