from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tools.base import ToolContext
from tools.environment import LocalEnvironment
from tools.registry import ToolRegistry
from tools.search.search import Search, SearchParams, clip_line, find_rg, parse_rg_json

pytestmark = pytest.mark.skipif(find_rg() is None, reason="ripgrep is not installed")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(
        "import os\n"
        "\n"
        "def handle_request(req):\n"
        "    return req\n"
        "\n"
        "def handle_error(err):\n"
        "    raise ValueError(err)\n"
        "\n"
        "class Handler:\n"
        "    pass\n"
    )
    (tmp_path / "src" / "util.js").write_text("function handleThing() {}\nconst x = foo(bar[0]);\n")
    (tmp_path / "README.md").write_text("Call HANDLE_REQUEST for each request.\n")
    return tmp_path


@pytest.fixture
def ctx(repo: Path) -> ToolContext:
    return ToolContext(root=repo, env=LocalEnvironment(repo))


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([Search()])


async def search(registry: ToolRegistry, ctx: ToolContext, **args):
    return await registry.execute("search", json.dumps(args), ctx)


async def test_matches_with_line_numbers(registry, ctx):
    result = await search(registry, ctx, pattern="handle_request")
    assert not result.is_error
    lines = result.output.splitlines()
    assert "src/app.py:3: def handle_request(req):" in lines
    assert result.output.rstrip().endswith("1 match in 1 file")
    assert result.data == {"matches": 1, "files": 1, "truncated": False}


async def test_regex_and_grouping_by_file(registry, ctx):
    result = await search(registry, ctx, pattern=r"def handle_\w+")
    assert "src/app.py:3: def handle_request(req):" in result.output
    assert "src/app.py:6: def handle_error(err):" in result.output
    assert "2 matches in 1 file" in result.output


async def test_several_files_sorted_by_path(registry, ctx):
    result = await search(registry, ctx, pattern="(?i)handle")
    paths = [line.split(":")[0] for line in result.output.splitlines() if ":" in line and "match" not in line]
    assert paths == sorted(paths)
    assert {"README.md", "src/app.py", "src/util.js"} <= set(paths)
    assert result.data["files"] == 3


async def test_glob_filter(registry, ctx):
    result = await search(registry, ctx, pattern="handle", glob="*.js")
    assert "src/util.js:1: function handleThing() {}" in result.output
    assert "app.py" not in result.output
    excluded = await search(registry, ctx, pattern="(?i)handle", glob="!src/**")
    assert excluded.output.startswith("README.md:1: Call HANDLE_REQUEST")
    assert "src/" not in excluded.output
    assert excluded.data["files"] == 1


async def test_path_restricts_the_search(registry, ctx):
    result = await search(registry, ctx, pattern="import", path="src/app.py")
    assert "src/app.py:1: import os" in result.output
    other = await search(registry, ctx, pattern="HANDLE_REQUEST", path="src")
    assert other.output.startswith("No matches for 'HANDLE_REQUEST' in src")


async def test_context_lines(registry, ctx):
    result = await search(registry, ctx, pattern="raise ValueError", context_lines=1)
    lines = result.output.splitlines()
    assert lines[:3] == [
        "src/app.py-6- def handle_error(err):",
        "src/app.py:7:     raise ValueError(err)",
        "src/app.py-8- ",
    ]


async def test_separator_between_non_adjacent_groups(registry, ctx):
    result = await search(registry, ctx, pattern="^def ", path="src/app.py", context_lines=0)
    assert "--" not in result.output
    spaced = await search(registry, ctx, pattern="^(import|class)", path="src/app.py", context_lines=1)
    lines = spaced.output.splitlines()
    assert "--" in lines
    assert lines.index("--") == 2  # import + blank line, then the class group
    assert "src/app.py:9: class Handler:" in lines


async def test_case_insensitive(registry, ctx):
    sensitive = await search(registry, ctx, pattern="handle_request")
    assert "README.md" not in sensitive.output
    insensitive = await search(registry, ctx, pattern="handle_request", case_insensitive=True)
    assert "README.md:1: Call HANDLE_REQUEST for each request." in insensitive.output
    assert insensitive.data["files"] == 2


async def test_fixed_strings_with_regex_metacharacters(registry, ctx):
    result = await search(registry, ctx, pattern="foo(bar[0])", fixed_strings=True)
    assert not result.is_error
    assert "src/util.js:2: const x = foo(bar[0]);" in result.output


async def test_invalid_regex_is_an_error_with_a_hint(registry, ctx):
    result = await search(registry, ctx, pattern="foo(bar[0]")
    assert result.is_error
    assert "regex parse error" in result.output
    assert "fixed_strings=true" in result.output


async def test_gitignore_is_respected(registry, ctx, repo):
    (repo / ".gitignore").write_text("generated/\nsecret.py\n")
    (repo / "generated").mkdir()
    (repo / "generated" / "out.py").write_text("handle_request = 1\n")
    (repo / "secret.py").write_text("handle_request = 2\n")
    result = await search(registry, ctx, pattern="handle_request")
    assert "generated" not in result.output
    assert "secret.py" not in result.output
    assert "src/app.py:3:" in result.output


async def test_hidden_files_searched_but_not_git(registry, ctx, repo):
    (repo / ".config.toml").write_text("handle_request = true\n")
    (repo / ".git" / "notes.txt").write_text("handle_request\n")
    result = await search(registry, ctx, pattern="handle_request")
    assert ".config.toml:1: handle_request = true" in result.output
    assert ".git/" not in result.output


async def test_binary_files_are_skipped(registry, ctx, repo):
    (repo / "blob.bin").write_bytes(b"handle_request\x00\x01\x02binary")
    result = await search(registry, ctx, pattern="handle_request")
    assert "blob.bin" not in result.output
    assert result.data["files"] == 1


async def test_result_cap_with_note(registry, ctx, repo):
    (repo / "many.txt").write_text("".join(f"needle {i}\n" for i in range(50)))
    result = await search(registry, ctx, pattern="needle", max_results=5)
    lines = [line for line in result.output.splitlines() if line.startswith("many.txt:")]
    assert lines == [f"many.txt:{i + 1}: needle {i}" for i in range(5)]
    assert "50 matches in 1 file (showing the first 5; narrow the pattern, path or glob)" in result.output
    assert result.data == {"matches": 50, "files": 1, "truncated": True}


async def test_cap_keeps_only_context_of_shown_matches(registry, ctx, repo):
    (repo / "many.txt").write_text("".join(f"{'needle' if i % 5 == 0 else 'hay'} {i}\n" for i in range(50)))
    result = await search(registry, ctx, pattern="needle", max_results=2, context_lines=1)
    lines = [line for line in result.output.splitlines() if line.startswith("many.txt")]
    assert lines == [
        "many.txt:1: needle 0",
        "many.txt-2- hay 1",
        "many.txt-5- hay 4",
        "many.txt:6: needle 5",
        "many.txt-7- hay 6",
    ]


async def test_path_outside_workspace_is_refused(registry, ctx):
    result = await search(registry, ctx, pattern="root", path="../../etc")
    assert result.is_error
    assert "outside the workspace" in result.output
    absolute = await search(registry, ctx, pattern="root", path="/etc/passwd")
    assert absolute.is_error and "outside the workspace" in absolute.output


async def test_missing_path(registry, ctx):
    result = await search(registry, ctx, pattern="x", path="nope")
    assert result.is_error
    assert "does not exist" in result.output


async def test_no_matches_is_not_an_error(registry, ctx):
    result = await search(registry, ctx, pattern="zebra_unicorn")
    assert not result.is_error
    assert result.output == "No matches for 'zebra_unicorn' in ."
    assert result.data == {"matches": 0, "files": 0, "truncated": False}


async def test_pattern_starting_with_dash(registry, ctx, repo):
    (repo / "flags.txt").write_text("use --verbose here\n")
    result = await search(registry, ctx, pattern="--verbose")
    assert "flags.txt:1: use --verbose here" in result.output


async def test_direct_call_and_long_lines(ctx, repo):
    (repo / "min.js").write_text("x" * 5000 + "TARGET" + "y" * 5000 + "\n")
    result = await Search().run(SearchParams(pattern="TARGET"), ctx)
    line = next(line for line in result.output.splitlines() if line.startswith("min.js"))
    assert "TARGET" in line
    assert len(line) < 600
    assert "chars omitted" in line and "more chars" in line


def test_clip_line_short_and_unicode():
    assert clip_line("short\n", 0) == "short"
    text = "é" * 1000 + "HIT" + "é" * 1000
    clipped = clip_line(text, len("é".encode()) * 1000)
    assert "HIT" in clipped


def test_parse_skips_dropped_middle_marker():
    match = {
        "type": "match",
        "data": {
            "path": {"text": "./a.py"},
            "lines": {"text": "hit\n"},
            "line_number": 1,
            "submatches": [{"start": 0, "end": 3}],
        },
    }
    output = "\n".join(
        [
            json.dumps(match),
            '{"type":"match","data":{"pa',
            "[... 123 bytes of output dropped ...]",
            'th":{"text":"./z.py"}}}',
            json.dumps(
                {"type": "summary", "data": {"stats": {"matched_lines": 900, "searches_with_match": 40}}}
            ),
        ]
    )
    parsed = parse_rg_json(output, max_results=100, context_lines=0)
    assert [f.path for f in parsed.files] == ["a.py"]
    assert parsed.total_matches == 900 and parsed.total_files == 40
    assert parsed.truncated
    assert not [line for line in parsed.stray if line.startswith("rg:")]
