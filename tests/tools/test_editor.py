from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tools.base import ToolContext, ToolError, ToolResult
from tools.editor.str_replace_editor import DIR_MAX_ENTRIES, StrReplaceEditor
from tools.environment import LocalEnvironment
from tools.registry import ToolRegistry

# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def root(tmp_path: Path) -> Path:
    # The workspace is a subdirectory so that tmp_path itself can hold files "outside" it.
    ws = tmp_path / "repo"
    ws.mkdir()
    return ws


@pytest.fixture
def ctx(root: Path) -> ToolContext:
    return ToolContext(root=root, env=LocalEnvironment(root))


async def run(ctx: ToolContext, **kwargs) -> ToolResult:
    return await StrReplaceEditor().run(StrReplaceEditor.Params(**kwargs), ctx)


async def fails(ctx: ToolContext, **kwargs) -> str:
    """Run the tool, expecting a ToolError (or an error result); return the message."""
    try:
        result = await run(ctx, **kwargs)
    except ToolError as exc:
        return str(exc)
    assert result.is_error, result.output
    return result.output


async def call(ctx: ToolContext, **arguments) -> ToolResult:
    """Through the registry, with JSON-string arguments as the model sends them."""
    registry = ToolRegistry([StrReplaceEditor()])
    return await registry.execute("str_replace_editor", json.dumps(arguments), ctx)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


# --------------------------------------------------------------------------- schema


def test_schema_uses_the_trained_parameter_names() -> None:
    schema = StrReplaceEditor.schema()
    assert schema["function"]["name"] == "str_replace_editor"
    props = schema["function"]["parameters"]["properties"]
    assert set(props) == {"command", "path", "file_text", "old_str", "new_str", "insert_line", "view_range"}
    assert schema["function"]["parameters"]["required"] == ["command", "path"]
    assert props["command"]["enum"] == ["view", "create", "str_replace", "insert", "undo_edit"]
    assert all(p.get("description") for p in props.values())
    assert "exactly one" in StrReplaceEditor.describe().lower()


# --------------------------------------------------------------------------- view


async def test_view_file_numbers_lines(ctx: ToolContext, root: Path) -> None:
    write(root / "a.py", "one\ntwo\nthree\n")
    result = await run(ctx, command="view", path="a.py")
    assert not result.is_error
    assert "`cat -n` on a.py" in result.output
    assert "     1\tone\n     2\ttwo\n     3\tthree" in result.output
    assert result.data == {"path": "a.py"}


async def test_view_absolute_path_inside_workspace_shows_relative(ctx: ToolContext, root: Path) -> None:
    write(root / "pkg" / "m.py", "x = 1\n")
    result = await run(ctx, command="view", path=str(root / "pkg" / "m.py"))
    assert "on pkg/m.py" in result.output
    assert str(root) not in result.output


async def test_view_range(ctx: ToolContext, root: Path) -> None:
    write(root / "f.txt", "".join(f"line{i}\n" for i in range(1, 11)))
    result = await run(ctx, command="view", path="f.txt", view_range=[3, 5])
    assert "(lines 3-5 of 10)" in result.output
    assert "     3\tline3\n     4\tline4\n     5\tline5" in result.output
    assert "line2" not in result.output and "line6" not in result.output

    to_end = await run(ctx, command="view", path="f.txt", view_range=[9, -1])
    assert "     9\tline9\n    10\tline10" in to_end.output
    assert "line8" not in to_end.output

    clamped = await run(ctx, command="view", path="f.txt", view_range=[8, 50])
    assert "    10\tline10" in clamped.output
    assert "only 10 lines" in clamped.output


async def test_view_range_as_string_from_registry(ctx: ToolContext, root: Path) -> None:
    write(root / "f.txt", "a\nb\nc\n")
    result = await call(ctx, command="view", path="f.txt", view_range="[2, 3]")
    assert not result.is_error, result.output
    assert "     2\tb\n     3\tc" in result.output


@pytest.mark.parametrize(
    ("view_range", "phrase"),
    [
        ([0, 3], "must be 1 or more"),
        ([5, 3], "is before its start"),
        ([20, 25], "beyond the end of f.txt, which has 10 lines"),
        ([1, 2, 3], "must be two integers"),
        ([4], "must be two integers"),
    ],
)
async def test_view_range_errors(ctx: ToolContext, root: Path, view_range: list[int], phrase: str) -> None:
    write(root / "f.txt", "".join(f"line{i}\n" for i in range(1, 11)))
    assert phrase in await fails(ctx, command="view", path="f.txt", view_range=view_range)


async def test_view_empty_file(ctx: ToolContext, root: Path) -> None:
    write(root / "empty.txt", "")
    result = await run(ctx, command="view", path="empty.txt")
    assert "is empty" in result.output


async def test_view_missing_path(ctx: ToolContext) -> None:
    message = await fails(ctx, command="view", path="nope.py")
    assert "nope.py does not exist" in message


async def test_view_long_file_shows_first_part_with_note(ctx: ToolContext, root: Path) -> None:
    write(root / "long.txt", "".join(f"row {i}\n" for i in range(1, 3001)))
    result = await run(ctx, command="view", path="long.txt")
    assert "  2000\trow 2000" in result.output
    assert "row 2001" not in result.output
    assert "Showing lines 1-2000 of 3000" in result.output
    assert "view_range" in result.output


async def test_view_over_100kb_is_capped(ctx: ToolContext, root: Path) -> None:
    write(root / "wide.txt", ("x" * 1000 + "\n") * 500)  # 500 KB, 500 lines
    result = await run(ctx, command="view", path="wide.txt")
    assert len(result.output) < 110_000
    assert "Showing lines 1-" in result.output and "of 500" in result.output


async def test_view_cuts_very_long_lines(ctx: ToolContext, root: Path) -> None:
    write(root / "min.js", "a" * 5000 + "\nshort\n")
    result = await run(ctx, command="view", path="min.js")
    assert "3000 more characters on this line truncated" in result.output
    assert "a" * 2001 not in result.output
    assert "     2\tshort" in result.output


async def test_view_directory_two_levels_skipping_junk(ctx: ToolContext, root: Path) -> None:
    write(root / "src" / "app.py", "")
    write(root / "src" / "deep" / "inner" / "x.py", "")
    write(root / "README.md", "")
    write(root / ".hidden", "")
    write(root / "node_modules" / "lib.js", "")
    write(root / "src" / "__pycache__" / "app.pyc", "")
    write(root / ".git" / "HEAD", "")
    write(root / "build", "a file called build is not a junk dir\n")
    result = await run(ctx, command="view", path=".")
    lines = result.output.splitlines()[1:]
    assert lines == ["README.md", "build", "src/", "src/app.py", "src/deep/"]
    assert "2 levels deep" in result.output

    sub = await run(ctx, command="view", path="src")
    assert sub.output.splitlines()[1:] == ["src/app.py", "src/deep/", "src/deep/inner/"]


async def test_view_directory_caps_entries(ctx: ToolContext, root: Path) -> None:
    for i in range(DIR_MAX_ENTRIES + 50):
        write(root / f"f{i:04}.txt", "")
    result = await run(ctx, command="view", path=".")
    assert len(result.output.splitlines()) == 1 + DIR_MAX_ENTRIES + 1
    assert "50 more entries not shown" in result.output


async def test_view_empty_directory_and_range_on_directory(ctx: ToolContext, root: Path) -> None:
    (root / "empty").mkdir()
    assert "empty directory" in (await run(ctx, command="view", path="empty")).output
    assert "is a directory" in await fails(ctx, command="view", path="empty", view_range=[1, 2])


# --------------------------------------------------------------------------- create


async def test_create_makes_parents_and_writes_exactly(ctx: ToolContext, root: Path) -> None:
    text = "def f():\n    return 'héllo ✓'\n"
    result = await run(ctx, command="create", path="pkg/sub/new.py", file_text=text)
    assert not result.is_error
    assert "File created successfully at pkg/sub/new.py" in result.output
    assert (root / "pkg" / "sub" / "new.py").read_bytes() == text.encode("utf-8")
    assert result.data["path"] == "pkg/sub/new.py"
    assert "+def f():" in result.data["diff"]
    assert "b/pkg/sub/new.py" in result.data["diff"]


async def test_create_empty_file(ctx: ToolContext, root: Path) -> None:
    await run(ctx, command="create", path="empty.txt", file_text="")
    assert (root / "empty.txt").read_bytes() == b""


async def test_create_refuses_existing_file(ctx: ToolContext, root: Path) -> None:
    write(root / "a.py", "keep me\n")
    message = await fails(ctx, command="create", path="a.py", file_text="overwritten\n")
    assert "already exists" in message and "str_replace" in message
    assert (root / "a.py").read_text() == "keep me\n"


async def test_create_refuses_directory(ctx: ToolContext, root: Path) -> None:
    (root / "d").mkdir()
    assert "is a directory" in await fails(ctx, command="create", path="d", file_text="x")


async def test_create_missing_file_text(ctx: ToolContext, root: Path) -> None:
    message = await fails(ctx, command="create", path="new.py")
    assert "`file_text` is required" in message
    assert not (root / "new.py").exists()


async def test_create_new_file_has_default_mode(ctx: ToolContext, root: Path) -> None:
    await run(ctx, command="create", path="n.txt", file_text="x\n")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((root / "n.txt").stat().st_mode) == 0o666 & ~mask


# --------------------------------------------------------------------------- str_replace


async def test_str_replace_edits_and_returns_snippet_and_diff(ctx: ToolContext, root: Path) -> None:
    lines = [f"line {i}" for i in range(1, 21)]
    write(root / "f.py", "\n".join(lines) + "\n")
    result = await run(ctx, command="str_replace", path="f.py", old_str="line 10\n", new_str="line ten\n")
    assert not result.is_error
    on_disk = (root / "f.py").read_text()
    assert "line ten\n" in on_disk and "line 10\n" not in on_disk
    assert "has been edited" in result.output
    assert "    10\tline ten" in result.output
    assert "     6\tline 6" in result.output  # context before
    assert "    14\tline 14" in result.output  # context after
    assert "line 2\n" not in result.output
    assert "Review the changes" in result.output
    diff = result.data["diff"]
    assert diff.startswith("--- a/f.py\n+++ b/f.py\n")
    assert "-line 10\n+line ten\n" in diff


async def test_str_replace_no_match(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "alpha\nbeta\n")
    message = await fails(ctx, command="str_replace", path="f.py", old_str="gamma", new_str="delta")
    assert "did not appear verbatim in f.py" in message
    assert (root / "f.py").read_text() == "alpha\nbeta\n"


async def test_str_replace_whitespace_hint_names_lines(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "x = 0\n\nclass A:\n    def f(self):\n        return 1\n")
    # The model got the indentation wrong.
    message = await fails(
        ctx, command="str_replace", path="f.py", old_str="  def f(self):\n    return 1", new_str=""
    )
    assert "did not appear verbatim" in message
    assert "ignored, at lines 4-5" in message
    assert "     4\t    def f(self):" in message


async def test_str_replace_whitespace_hint_mentions_tabs(ctx: ToolContext, root: Path) -> None:
    write(root / "Makefile", "all:\n\techo  hi\n")
    message = await fails(
        ctx, command="str_replace", path="Makefile", old_str="    echo hi", new_str="    echo bye"
    )
    assert "at line 2" in message
    assert "tabs" in message


async def test_str_replace_multiple_matches_lists_lines(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n")
    message = await fails(ctx, command="str_replace", path="f.py", old_str="x = 1", new_str="x = 9")
    assert "occurs 3 times" in message
    assert "lines 1, 3, 5" in message
    assert "more surrounding lines" in message
    assert (root / "f.py").read_text() == "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n"


async def test_str_replace_overlapping_matches_are_ambiguous(ctx: ToolContext, root: Path) -> None:
    write(root / "f.txt", "aaa\n")
    assert "occurs 2 times" in await fails(
        ctx, command="str_replace", path="f.txt", old_str="aa", new_str="b"
    )


async def test_str_replace_delete_with_empty_or_omitted_new_str(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "keep\ndrop me\nkeep too\n")
    await run(ctx, command="str_replace", path="f.py", old_str="drop me\n", new_str="")
    assert (root / "f.py").read_text() == "keep\nkeep too\n"
    await run(ctx, command="str_replace", path="f.py", old_str="keep too\n")
    assert (root / "f.py").read_text() == "keep\n"


async def test_str_replace_argument_errors(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "a\n")
    assert "`old_str` is required" in await fails(ctx, command="str_replace", path="f.py", new_str="b")
    assert "old_str is empty" in await fails(ctx, command="str_replace", path="f.py", old_str="", new_str="b")
    assert "identical" in await fails(ctx, command="str_replace", path="f.py", old_str="a", new_str="a")
    assert (root / "f.py").read_text() == "a\n"


async def test_str_replace_on_directory_and_missing_file(ctx: ToolContext, root: Path) -> None:
    (root / "d").mkdir()
    assert "is a directory" in await fails(ctx, command="str_replace", path="d", old_str="a", new_str="b")
    message = await fails(ctx, command="str_replace", path="nope.py", old_str="a", new_str="b")
    assert "does not exist" in message and "create" in message


async def test_str_replace_unicode(ctx: ToolContext, root: Path) -> None:
    write(root / "u.txt", "naïve café 日本語\nemoji 🎉 here\n")
    result = await run(ctx, command="str_replace", path="u.txt", old_str="🎉", new_str="✨✨")
    assert not result.is_error
    assert (root / "u.txt").read_bytes().decode("utf-8") == "naïve café 日本語\nemoji ✨✨ here\n"
    assert "emoji ✨✨ here" in result.output


# --------------------------------------------------------------------------- file integrity


async def test_crlf_preserved_on_str_replace(ctx: ToolContext, root: Path) -> None:
    write(root / "win.txt", b"first\r\nsecond\r\nthird\r\n")
    # The model writes "\n"; it must match the CRLF text and be written back as CRLF.
    result = await run(
        ctx, command="str_replace", path="win.txt", old_str="first\nsecond", new_str="1st\n2nd\n2.5"
    )
    assert not result.is_error, result.output
    assert (root / "win.txt").read_bytes() == b"1st\r\n2nd\r\n2.5\r\nthird\r\n"
    assert "\r" not in result.output


async def test_crlf_preserved_on_insert_and_view(ctx: ToolContext, root: Path) -> None:
    write(root / "win.txt", b"a\r\nb\r\n")
    await run(ctx, command="insert", path="win.txt", insert_line=1, new_str="x\ny")
    assert (root / "win.txt").read_bytes() == b"a\r\nx\r\ny\r\nb\r\n"
    view = await run(ctx, command="view", path="win.txt")
    assert "     2\tx\n     3\ty" in view.output
    assert "\r" not in view.output


async def test_no_trailing_newline_preserved(ctx: ToolContext, root: Path) -> None:
    write(root / "f.txt", "a\nb")
    await run(ctx, command="str_replace", path="f.txt", old_str="b", new_str="c\n")
    assert (root / "f.txt").read_bytes() == b"a\nc"
    await run(ctx, command="insert", path="f.txt", insert_line=2, new_str="d\n")
    assert (root / "f.txt").read_bytes() == b"a\nc\nd"
    await run(ctx, command="insert", path="f.txt", insert_line=1, new_str="mid")
    assert (root / "f.txt").read_bytes() == b"a\nmid\nc\nd"


async def test_trailing_newline_kept_when_old_str_includes_it(ctx: ToolContext, root: Path) -> None:
    write(root / "f.txt", "a\nb\n")
    await run(ctx, command="str_replace", path="f.txt", old_str="b\n", new_str="c")
    assert (root / "f.txt").read_bytes() == b"a\nc\n"


async def test_mode_preserved(ctx: ToolContext, root: Path) -> None:
    script = write(root / "run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    await run(ctx, command="str_replace", path="run.sh", old_str="echo hi", new_str="echo bye")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    await run(ctx, command="insert", path="run.sh", insert_line=2, new_str="exit 0")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    await run(ctx, command="undo_edit", path="run.sh")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert script.read_text() == "#!/bin/sh\necho bye\n"


async def test_no_temp_files_left_behind(ctx: ToolContext, root: Path) -> None:
    write(root / "f.txt", "a\n")
    await run(ctx, command="str_replace", path="f.txt", old_str="a", new_str="b")
    assert sorted(p.name for p in root.iterdir()) == ["f.txt"]


async def test_symlink_inside_workspace_edits_target_keeps_link(ctx: ToolContext, root: Path) -> None:
    target = write(root / "real.txt", "old\n")
    (root / "link.txt").symlink_to(target)
    await run(ctx, command="str_replace", path="link.txt", old_str="old", new_str="new")
    assert (root / "link.txt").is_symlink()
    assert target.read_text() == "new\n"


# --------------------------------------------------------------------------- refusals


async def test_binary_refused(ctx: ToolContext, root: Path) -> None:
    write(root / "img.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    message = await fails(ctx, command="view", path="img.bin")
    assert "binary" in message and "xxd" in message
    message = await fails(ctx, command="str_replace", path="img.bin", old_str="PNG", new_str="GIF")
    assert "binary" in message
    assert (root / "img.bin").read_bytes().startswith(b"\x89PNG")


async def test_invalid_utf8_refused(ctx: ToolContext, root: Path) -> None:
    write(root / "latin1.txt", "café\n".encode("latin-1"))
    message = await fails(ctx, command="view", path="latin1.txt")
    assert "not valid UTF-8" in message and "0xe9" in message and "file latin1.txt" in message
    assert "not valid UTF-8" in await fails(
        ctx, command="insert", path="latin1.txt", insert_line=0, new_str="x"
    )
    assert (root / "latin1.txt").read_bytes() == "café\n".encode("latin-1")


async def test_huge_file_refused_but_ranged_view_streams(ctx: ToolContext, root: Path) -> None:
    line = "0123456789" * 9 + "\n"  # 91 bytes
    count = 6 * 1024 * 1024 // len(line) + 10
    big = write(root / "big.log", line * count)
    assert big.stat().st_size > 5 * 1024 * 1024
    message = await fails(ctx, command="view", path="big.log")
    assert "too large to view whole" in message and "view_range" in message
    message = await fails(ctx, command="str_replace", path="big.log", old_str="0123", new_str="x")
    assert "too large to edit" in message and "execute_bash" in message

    result = await run(ctx, command="view", path="big.log", view_range=[count - 1, -1])
    assert not result.is_error
    assert f"(lines {count - 1}-{count} of {count})" in result.output
    assert f"{count:6}\t0123456789" in result.output

    long_range = await run(ctx, command="view", path="big.log", view_range=[1, 5000])
    assert "  1000\t" in long_range.output
    assert "the requested range is too long" in long_range.output


async def test_fifo_refused(ctx: ToolContext, root: Path) -> None:
    os.mkfifo(root / "pipe")
    assert "not a regular file" in await fails(ctx, command="view", path="pipe")


# --------------------------------------------------------------------------- paths


async def test_dotdot_refused(ctx: ToolContext, root: Path, tmp_path: Path) -> None:
    write(tmp_path / "secret.txt", "secret\n")
    message = await fails(ctx, command="view", path="../secret.txt")
    assert "outside the workspace" in message
    message = await fails(ctx, command="create", path="../evil.txt", file_text="x")
    assert "outside the workspace" in message
    assert not (tmp_path / "evil.txt").exists()


async def test_absolute_path_outside_refused(ctx: ToolContext, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside.txt", "keep\n")
    message = await fails(ctx, command="str_replace", path=str(outside), old_str="keep", new_str="gone")
    assert "outside the workspace" in message
    assert outside.read_text() == "keep\n"


async def test_symlink_escaping_workspace_refused(ctx: ToolContext, root: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside.txt", "keep\n")
    (root / "sneaky.txt").symlink_to(outside)
    (root / "sneaky_dir").symlink_to(tmp_path)
    for kwargs in (
        {"command": "view", "path": "sneaky.txt"},
        {"command": "str_replace", "path": "sneaky.txt", "old_str": "keep", "new_str": "gone"},
        {"command": "insert", "path": "sneaky.txt", "insert_line": 0, "new_str": "x"},
        {"command": "create", "path": "sneaky_dir/new.txt", "file_text": "x"},
    ):
        assert "outside the workspace" in await fails(ctx, **kwargs)
    assert outside.read_text() == "keep\n"
    assert not (tmp_path / "new.txt").exists()


# --------------------------------------------------------------------------- insert


async def test_insert_at_top_middle_and_end(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "a\nb\n")
    result = await run(ctx, command="insert", path="f.py", insert_line=0, new_str="# header")
    assert (root / "f.py").read_text() == "# header\na\nb\n"
    assert "inserted 1 line after line 0" in result.output
    assert "     1\t# header" in result.output
    assert "+# header" in result.data["diff"]

    await run(ctx, command="insert", path="f.py", insert_line=3, new_str="c\nd\n")
    assert (root / "f.py").read_text() == "# header\na\nb\nc\nd\n"

    await run(ctx, command="insert", path="f.py", insert_line=2, new_str="between")
    assert (root / "f.py").read_text() == "# header\na\nbetween\nb\nc\nd\n"


async def test_insert_into_empty_file(ctx: ToolContext, root: Path) -> None:
    write(root / "e.txt", "")
    await run(ctx, command="insert", path="e.txt", insert_line=0, new_str="first")
    assert (root / "e.txt").read_text() == "first\n"


async def test_insert_errors(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "a\nb\n")
    message = await fails(ctx, command="insert", path="f.py", insert_line=3, new_str="x")
    assert "insert_line 3 is out of range" in message and "from 0" in message and "to 2" in message
    assert "out of range" in await fails(ctx, command="insert", path="f.py", insert_line=-1, new_str="x")
    assert "`insert_line` is required" in await fails(ctx, command="insert", path="f.py", new_str="x")
    assert "`new_str` is required" in await fails(ctx, command="insert", path="f.py", insert_line=1)
    assert "nothing to insert" in await fails(ctx, command="insert", path="f.py", insert_line=1, new_str="")
    assert (root / "f.py").read_text() == "a\nb\n"


# --------------------------------------------------------------------------- undo_edit


async def test_undo_create_deletes_file(ctx: ToolContext, root: Path) -> None:
    await run(ctx, command="create", path="new.py", file_text="x = 1\n")
    result = await run(ctx, command="undo_edit", path="new.py")
    assert "deleted" in result.output
    assert not (root / "new.py").exists()
    assert "-x = 1" in result.data["diff"]


async def test_undo_str_replace_and_insert_in_order(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "a\nb\nc\n")
    await run(ctx, command="str_replace", path="f.py", old_str="b", new_str="B")
    await run(ctx, command="insert", path="f.py", insert_line=3, new_str="d")
    assert (root / "f.py").read_text() == "a\nB\nc\nd\n"

    result = await run(ctx, command="undo_edit", path="f.py")
    assert "undone successfully" in result.output
    assert (root / "f.py").read_text() == "a\nB\nc\n"
    assert "-d" in result.data["diff"]

    result = await run(ctx, command="undo_edit", path="f.py")
    assert (root / "f.py").read_text() == "a\nb\nc\n"
    assert "     2\tb" in result.output

    assert "nothing to undo" in await fails(ctx, command="undo_edit", path="f.py")
    assert ctx.state["edit_history"] == {}


async def test_undo_nothing_to_undo(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "a\n")
    assert "nothing to undo for f.py" in await fails(ctx, command="undo_edit", path="f.py")


async def test_history_is_per_path(ctx: ToolContext, root: Path) -> None:
    write(root / "a.txt", "a\n")
    write(root / "b.txt", "b\n")
    await run(ctx, command="str_replace", path="a.txt", old_str="a", new_str="A")
    await run(ctx, command="str_replace", path="b.txt", old_str="b", new_str="B")
    await run(ctx, command="undo_edit", path="a.txt")
    assert (root / "a.txt").read_text() == "a\n"
    assert (root / "b.txt").read_text() == "B\n"
    assert ctx.state["edit_history"] == {str((root / "b.txt").resolve()): ["b\n"]}


async def test_undo_restores_crlf_exactly(ctx: ToolContext, root: Path) -> None:
    write(root / "w.txt", b"x\r\ny")
    await run(ctx, command="str_replace", path="w.txt", old_str="y", new_str="z")
    await run(ctx, command="undo_edit", path="w.txt")
    assert (root / "w.txt").read_bytes() == b"x\r\ny"


# --------------------------------------------------------------------------- hooks


async def test_after_write_hook_rolls_back_edit(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "x = 1\n")
    seen: list[tuple[Path, str | None, str]] = []

    def guard(path: Path, old: str | None, new: str) -> str | None:
        seen.append((path, old, new))
        assert path.read_text() == new  # called after the write
        return "SyntaxError: the edit broke f.py; it was rolled back." if "(" in new else None

    ctx.state["after_write"] = guard
    result = await run(ctx, command="str_replace", path="f.py", old_str="x = 1", new_str="x = (1")
    assert result.is_error
    assert result.output == "SyntaxError: the edit broke f.py; it was rolled back."
    assert (root / "f.py").read_text() == "x = 1\n"
    assert seen == [((root / "f.py").resolve(), "x = 1\n", "x = (1\n")]
    assert "nothing to undo" in await fails(ctx, command="undo_edit", path="f.py")

    ok = await run(ctx, command="str_replace", path="f.py", old_str="x = 1", new_str="x = 2")
    assert not ok.is_error
    assert (root / "f.py").read_text() == "x = 2\n"


async def test_after_write_hook_rolls_back_create(ctx: ToolContext, root: Path) -> None:
    ctx.state["after_write"] = lambda path, old, new: "refused" if old is None else ""
    result = await run(ctx, command="create", path="new/dir/f.py", file_text="x\n")
    assert result.is_error and result.output == "refused"
    assert not (root / "new").exists()


async def test_before_write_hook_can_refuse(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "a\n")
    calls: list[Path] = []

    async def before(path: Path) -> str:
        calls.append(path)
        return "View f.py before editing it."

    ctx.state["before_write"] = before
    message = await fails(ctx, command="str_replace", path="f.py", old_str="a", new_str="b")
    assert message == "View f.py before editing it."
    assert (root / "f.py").read_text() == "a\n"
    assert calls == [(root / "f.py").resolve()]


async def test_before_write_hook_called_for_undo(ctx: ToolContext, root: Path) -> None:
    calls: list[Path] = []
    ctx.state["before_write"] = calls.append
    await run(ctx, command="create", path="f.py", file_text="a\n")
    await run(ctx, command="undo_edit", path="f.py")
    assert calls == [(root / "f.py").resolve()] * 2


# --------------------------------------------------------------------------- through the registry


async def test_registry_round_trip(ctx: ToolContext, root: Path) -> None:
    created = await call(ctx, command="create", path="hello.py", file_text="print('hi')\n")
    assert not created.is_error, created.output
    edited = await call(ctx, command="str_replace", path="hello.py", old_str="'hi'", new_str="'bye'")
    assert not edited.is_error, edited.output
    assert (root / "hello.py").read_text() == "print('bye')\n"
    viewed = await call(ctx, command="view", path="hello.py")
    assert "     1\tprint('bye')" in viewed.output
    undone = await call(ctx, command="undo_edit", path="hello.py")
    assert not undone.is_error
    assert (root / "hello.py").read_text() == "print('hi')\n"


async def test_registry_reports_errors_as_results(ctx: ToolContext, root: Path) -> None:
    write(root / "f.py", "x = 1\nx = 1\n")
    multi = await call(ctx, command="str_replace", path="f.py", old_str="x = 1", new_str="y")
    assert multi.is_error and "occurs 2 times" in multi.output and "lines 1, 2" in multi.output

    missing = await call(ctx, command="create", path="g.py")
    assert missing.is_error and "`file_text` is required" in missing.output

    bad_command = await call(ctx, command="delete", path="f.py")
    assert bad_command.is_error and "command" in bad_command.output

    no_path = await call(ctx, command="view")
    assert no_path.is_error and "path" in no_path.output and "required" in no_path.output.lower()

    escape = await call(ctx, command="view", path="../../etc/passwd")
    assert escape.is_error and "outside the workspace" in escape.output


async def test_mixed_line_endings_match_as_sent(ctx: ToolContext, root: Path) -> None:
    write(root / "mixed.txt", b"a\r\nb\nc\r\n")
    result = await run(ctx, command="str_replace", path="mixed.txt", old_str="b\nc", new_str="B\nC")
    assert not result.is_error, result.output
    assert (root / "mixed.txt").read_bytes() == b"a\r\nB\nC\r\n"
