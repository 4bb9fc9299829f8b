"""The markdown run summary, fed real event objects; the diffs come from real git repositories."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from agent import events as ev
from agent.summary import RunSummary, fence_for, is_test_command, parse_diff
from tests.support import git, make_repo

TASK = "Fix add() in calc/ops.py\n\nIt subtracts instead of adding. Make tests/test_ops.py pass."
FIX_DIFF = """diff --git a/calc/ops.py b/calc/ops.py
index 1111111..2222222 100644
--- a/calc/ops.py
+++ b/calc/ops.py
@@ -1,3 +1,3 @@
 def add(a, b):
     \"\"\"Return the sum of a and b.\"\"\"
-    return a - b
+    return a + b
"""


def started(task: str = TASK, **kw) -> ev.RunStarted:
    return ev.RunStarted(
        run_id="20250101-000000-abcdef",
        task=task,
        repo="/tmp/repo",
        commit="0" * 40,
        model=kw.pop("model", "kimi-k2"),
        trajectory="/tmp/runs/20250101-000000-abcdef.jsonl",
        **kw,
    )


def run_tests_call(step: int, call_id: str, data: dict, output: str = "") -> list[ev.Event]:
    return [
        ev.ToolCallStarted(step=step, call_id=call_id, name="run_tests", arguments="{}"),
        ev.ToolCallFinished(step=step, call_id=call_id, name="run_tests", output=output, data=data),
    ]


def bash_call(step: int, call_id: str, command: str, exit_code: int | None, **data) -> list[ev.Event]:
    return [
        ev.ToolCallStarted(
            step=step, call_id=call_id, name="execute_bash", arguments=json.dumps({"command": command})
        ),
        ev.ToolCallFinished(
            step=step,
            call_id=call_id,
            name="execute_bash",
            output=f"[exit code: {exit_code}]",
            is_error=False,
            data={"exit_code": exit_code, "duration": 0.1, "timed_out": False, **data},
        ),
    ]


def pytest_data(passed: int, failed: int, status: str, exit_code: int) -> dict:
    return {
        "framework": "pytest",
        "runner": "pytest",
        "command": "python -m pytest -q",
        "passed": passed,
        "failed": failed,
        "errors": 0,
        "skipped": 0,
        "exit_code": exit_code,
        "failures": ["tests/test_ops.py::test_add"] if failed else [],
        "duration": 0.4,
        "timed_out": False,
        "status": status,
    }


def finished(diff: str = FIX_DIFF, reason: str = "finished", exit_code: int = 0, **kw) -> ev.RunFinished:
    return ev.RunFinished(
        reason=reason,
        message=kw.pop("message", "add() subtracted; it adds now. Tests pass."),
        exit_code=exit_code,
        steps=kw.pop("steps", 5),
        diff=diff,
        prompt_tokens=kw.pop("prompt_tokens", 12345),
        completion_tokens=kw.pop("completion_tokens", 678),
        cached_tokens=kw.pop("cached_tokens", 9000),
        cost=kw.pop("cost", 0.01234),
        duration=kw.pop("duration", 83.2),
        **kw,
    )


def feed(summary: RunSummary, events: list[ev.Event]) -> RunSummary:
    for e in events:
        summary(e)
    return summary


def assert_well_formed(md: str) -> None:
    """Tables have a constant column count; every fence is closed; <details> balanced."""
    lines = md.splitlines()
    fence: str | None = None
    table_cols: int | None = None
    for line in lines:
        if fence is None:
            m = re.match(r"^(`{3,})", line)
            if m:
                fence = m.group(1)
                table_cols = None
                continue
        else:
            if re.fullmatch(re.escape(fence) + r"`*\s*", line):
                fence = None
            continue
        if line.startswith("|"):
            cols = len(re.split(r"(?<!\\)\|", line.strip())) - 2
            if table_cols is None:
                table_cols = cols
            assert cols == table_cols, f"table row with {cols} columns, expected {table_cols}: {line}"
        else:
            table_cols = None
    assert fence is None, "an unclosed code fence"
    assert md.count("<details>") == md.count("</details>")


def success_events() -> list[ev.Event]:
    return [
        started(),
        ev.StepStarted(step=1),
        *run_tests_call(1, "c1", pytest_data(1, 1, "FAILED", 1), "FAILED: 1 failed, 1 passed"),
        ev.CheckpointCreated(n=1, ref="refs/luban/x/1", label="str_replace calc/ops.py"),
        ev.ToolCallStarted(step=2, call_id="c2", name="str_replace_editor", arguments="{}"),
        ev.ToolCallFinished(step=2, call_id="c2", name="str_replace_editor", output="ok"),
        *run_tests_call(3, "c3", pytest_data(2, 0, "PASSED", 0), "PASSED: 2 passed"),
        ev.UsageUpdate(step=3, total_prompt_tokens=12345, total_completion_tokens=678),
        ev.ToolCallStarted(step=4, call_id="c4", name="finish", arguments='{"message": "done"}'),
        ev.ToolCallFinished(
            step=4, call_id="c4", name="finish", output="done", data={"message": "add() adds now."}
        ),
        finished(),
    ]


def test_success_with_tests_passing():
    md = feed(RunSummary(), success_events()).markdown()
    assert md.startswith("## Fix add() in calc/ops.py\n")
    assert "✅ **Finished** · exit code `0` · 5 steps" in md
    assert "> add() subtracted; it adds now. Tests pass." in md
    assert "| `calc/ops.py` | 1 | 1 | modified |" in md
    assert "1 file changed, +1 −1." in md
    # both test runs, the last marked final
    assert "❌ FAILED: 1 failed, 1 passed (exit 1)" in md
    assert "✅ PASSED: 2 passed **(final)**" in md
    assert "Final test state: ✅ PASSED: 2 passed" in md
    # usage
    assert "| `kimi-k2` | 5 | 12,345 | 678 | 9,000 | $0.0123 | 1 min 23 s |" in md
    assert "1 checkpoint; undo with `luban undo --run 20250101-000000-abcdef`" in md
    assert "<details><summary>Diff</summary>" in md and "```diff\n" + FIX_DIFF.rstrip("\n") + "\n```" in md
    assert_well_formed(md)
    assert len(md) < 60_000


def test_finish_message_is_used_when_run_finished_has_none():
    events = success_events()
    events[-1] = finished(message="")
    md = feed(RunSummary(), events).markdown()
    assert "> add() adds now." in md


def test_failure_with_failing_tests():
    events = [
        started(),
        *run_tests_call(1, "c1", pytest_data(1, 1, "FAILED", 1)),
        *bash_call(2, "c2", "cd calc && python -m pytest -x ../tests", 1),
        finished(diff="", reason="max_steps", exit_code=1, message="reached the step limit (2)", steps=2),
    ]
    md = feed(RunSummary(), events).markdown()
    assert "⚠️ **Stopped: the step limit was reached** · exit code `1` · 2 steps" in md
    assert "> reached the step limit (2)" in md
    assert "❌ failed (exit 1) **(final)**" in md
    assert "`cd calc && python -m pytest -x ../tests`" in md
    assert "No changes." in md and "<details>" not in md
    assert_well_formed(md)


def test_timeout_and_model_error():
    data = pytest_data(0, 0, "", 0) | {"timed_out": True, "exit_code": None}
    del data["status"]
    events = [
        started(),
        *run_tests_call(1, "c1", data),
        ev.ErrorEvent(kind="ProviderError", message="429 engine overloaded"),
        finished(diff="", reason="model_error", exit_code=3, message="429 engine overloaded", cost=0.0),
    ]
    md = feed(RunSummary(), events).markdown()
    assert "❌ **Failed: the model or provider returned an error** · exit code `3`" in md
    assert "⏱️ TIMEOUT" in md
    assert "### Notes" in md and "Error (ProviderError): 429 engine overloaded" in md
    assert "unknown prices" in md
    assert_well_formed(md)


def test_no_changes_and_no_tests():
    md = feed(
        RunSummary(),
        [started(), finished(diff="", reason="answered", prompt_tokens=0, completion_tokens=0, cost=0.0)],
    ).markdown()
    assert "No changes." in md and "No tests were run." in md and "$0.0000" in md
    assert "### Notes" not in md
    assert_well_formed(md)


def test_markdown_before_the_run_finishes():
    md = feed(RunSummary(), [started(), ev.StepStarted(step=2)]).markdown()
    assert "has not finished" in md and "No changes recorded yet." in md
    assert_well_formed(md)
    assert RunSummary().markdown().startswith("## Luban run")


@pytest.mark.parametrize(
    "command,expected",
    [
        ("pytest -q", True),
        ("python -m pytest tests/test_x.py", True),
        ("python3 -m unittest discover", True),
        ("cd sub && FOO=1 pytest", True),
        ("tox -e py311", True),
        ("nox -s tests", True),
        ("npm test", True),
        ("npm run test -- --ci", True),
        ("yarn test", True),
        ("pnpm test", True),
        ("go test ./...", True),
        ("cargo test --all", True),
        ("npx jest src", True),
        ("npx vitest run", True),
        ("make test", True),
        ("uv run pytest", True),
        (".venv/bin/pytest -x 2>&1 | tail -20", True),
        ("ls tests", False),
        ("cat pytest.ini", False),
        ("grep -r pytest .", False),
        ("npm install", False),
        ("echo 'pytest", False),
    ],
)
def test_test_command_detection(command, expected):
    assert is_test_command(command) is expected


def test_piped_test_commands_do_not_claim_success():
    events = [started(), *bash_call(1, "c1", "pytest -q 2>&1 | tail -5", 0), finished()]
    md = feed(RunSummary(), events).markdown()
    assert "❔ exit 0 (output piped" in md
    events = [started(), *bash_call(1, "c1", "set -o pipefail; pytest -q | tail -5", 0), finished()]
    assert "✅ passed (exit 0)" in feed(RunSummary(), events).markdown()


def test_non_test_commands_are_not_listed():
    events = [started(), *bash_call(1, "c1", "ls -la", 0), finished()]
    assert "No tests were run." in feed(RunSummary(), events).markdown()


# --------------------------------------------------------------------------- diffs


def real_diff(tmp_path: Path) -> str:
    """A diff with a rename, a binary file, a mode change, a new and a deleted file, from git."""
    repo = make_repo(
        tmp_path / "repo",
        {
            "old_name.py": "".join(f"line {i}\n" for i in range(30)),
            "logo.png": "",
            "script.sh": "echo hi\n",
            "gone.txt": "bye\n",
            "dir with space/a|b.txt": "x\n",
        },
    )
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary\x00")
    git(repo, "mv", "old_name.py", "new_name.py")
    (repo / "new_name.py").write_text("".join(f"line {i}\n" for i in range(30)) + "line 30\n")
    (repo / "script.sh").chmod(0o755)
    (repo / "gone.txt").unlink()
    (repo / "fresh.md").write_text("# new\n\nhello\n")
    (repo / "dir with space" / "a|b.txt").write_text("y\n")
    git(repo, "add", "-A")
    return subprocess.run(
        ["git", "diff", "--cached", "--no-color", "--find-renames"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_parse_diff_rename_binary_mode_new_deleted(tmp_path):
    diff = real_diff(tmp_path)
    files = {f.path: f for f in parse_diff(diff)}
    assert set(files) == {
        "new_name.py",
        "logo.png",
        "script.sh",
        "gone.txt",
        "fresh.md",
        "dir with space/a|b.txt",
    }
    assert files["new_name.py"].renamed and files["new_name.py"].old_path == "old_name.py"
    assert (files["new_name.py"].added, files["new_name.py"].removed) == (1, 0)
    assert files["logo.png"].binary
    assert files["script.sh"].describe() == "mode 100644 → 100755"
    assert files["gone.txt"].deleted and files["gone.txt"].removed == 1
    assert files["fresh.md"].new and files["fresh.md"].added == 3 and files["fresh.md"].describe() == "new"
    assert files["dir with space/a|b.txt"].describe() == "modified"
    assert (files["dir with space/a|b.txt"].added, files["dir with space/a|b.txt"].removed) == (1, 1)

    md = feed(RunSummary(), [started(), finished(diff=diff)]).markdown()
    assert "| `new_name.py` | 1 | 0 | renamed from `old_name.py` |" in md
    assert "| `logo.png` | — | — | binary |" in md
    assert "| `gone.txt` | 0 | 1 | deleted |" in md
    assert "`dir with space/a\\|b.txt`" in md
    assert "6 files changed" in md
    assert_well_formed(md)


def test_parse_diff_counts_lines_that_look_like_headers():
    diff = (
        "diff --git a/notes.md b/notes.md\n"
        "index 1..2 100644\n"
        "--- a/notes.md\n"
        "+++ b/notes.md\n"
        "@@ -1,2 +1,3 @@\n"
        "--- a/fake\n"
        "+++ b/fake\n"
        "+diff --git a/x b/x\n"
        " context\n"
        "\\ No newline at end of file\n"
    )
    [f] = parse_diff(diff)
    assert (f.path, f.added, f.removed) == ("notes.md", 2, 1)


def test_parse_diff_quoted_unicode_path():
    diff = (
        'diff --git "a/t\\303\\251st.py" "b/t\\303\\251st.py"\n'
        "new file mode 100644\n"
        "index 0000000..1111111\n"
        "--- /dev/null\n"
        '+++ "b/t\\303\\251st.py"\n'
        "@@ -0,0 +1 @@\n"
        "+x = 1\n"
    )
    [f] = parse_diff(diff)
    assert f.path == "tést.py" and f.new and f.added == 1


def test_a_diff_containing_fences_gets_a_longer_fence():
    diff = (
        "diff --git a/README.md b/README.md\n"
        "--- a/README.md\n"
        "+++ b/README.md\n"
        "@@ -1,2 +1,4 @@\n"
        " ```python\n"
        "+````\n"
        "+x\n"
        " ```\n"
    )
    assert fence_for(diff) == "`````"
    md = feed(RunSummary(), [started(), finished(diff=diff)]).markdown()
    assert "`````diff\n" in md and "\n`````\n" in md
    assert_well_formed(md)


def test_huge_diff_is_truncated_under_max_chars():
    body = "".join(f"+line {i} {'x' * 60}\n" for i in range(5000))
    diff = (
        "diff --git a/big.txt b/big.txt\nnew file mode 100644\n--- /dev/null\n+++ b/big.txt\n"
        f"@@ -0,0 +1,5000 @@\n{body}"
    )
    summary = feed(RunSummary(patch_path="luban.patch"), [started(), finished(diff=diff)])
    md = summary.markdown()
    assert len(md) <= 60_000
    assert "| `big.txt` | 5000 | 0 | new |" in md
    assert "The diff is truncated (showing" in md and "the full patch is in `luban.patch`" in md
    assert_well_formed(md)
    for limit in (65_536, 20_000, 5_000, 2_000, 800, 100):
        text = summary.markdown(max_chars=limit)
        assert len(text) <= limit, limit
        assert_well_formed(text)
    # no patch file: point to the trajectory
    md = feed(RunSummary(), [started(), finished(diff=diff)]).markdown(max_chars=10_000)
    assert "the full diff is in the trajectory `/tmp/runs/20250101-000000-abcdef.jsonl`" in md


def test_truncated_diff_with_fences_stays_closed():
    body = "".join(f"+```` fence {i}\n" for i in range(3000))
    diff = f"diff --git a/a.md b/a.md\n--- a/a.md\n+++ b/a.md\n@@ -0,0 +1,3000 @@\n{body}"
    md = feed(RunSummary(), [started(), finished(diff=diff)]).markdown(max_chars=8_000)
    assert len(md) <= 8_000 and "`````diff" in md
    assert_well_formed(md)


# --------------------------------------------------------------------------- notes


def test_approvals_denied_are_noted():
    events = [
        started(),
        ev.ToolCallStarted(
            step=1, call_id="c1", name="execute_bash", arguments=json.dumps({"command": "rm -rf build"})
        ),
        ev.ApprovalRequested(
            call_id="c1",
            tool="execute_bash",
            kind="command",
            summary="run: rm -rf build",
            key="execute_bash:rm",
        ),
        ev.ApprovalAnswered(
            call_id="c1",
            tool="execute_bash",
            decision="deny",
            by="policy",
            message="This is a non-interactive run | the policy (auto-edit mode) needs approval",
        ),
        ev.ToolCallFinished(
            step=1, call_id="c1", name="execute_bash", output="refused", is_error=True, data={"refused": True}
        ),
        ev.ToolCallStarted(
            step=2, call_id="c2", name="execute_bash", arguments=json.dumps({"command": "git push -f"})
        ),
        ev.ApprovalAnswered(
            call_id="c2",
            tool="execute_bash",
            decision="deny",
            by="policy",
            message="`git push -f` is never allowed: it force-pushes and rewrites published history",
        ),
        ev.ApprovalAnswered(call_id="c3", tool="git_commit", decision="allow", by="user"),
        ev.ApprovalAnswered(call_id="c4", tool="git_commit", decision="deny", by="user", message="not yet"),
        # a refusal without an ApprovalAnswered (e.g. a failed checkpoint) is noted from the result
        ev.ToolCallStarted(step=3, call_id="c5", name="str_replace_editor", arguments='{"path": "a.py"}'),
        ev.ToolCallFinished(
            step=3,
            call_id="c5",
            name="str_replace_editor",
            output="This change was not made: no checkpoint",
            is_error=True,
            data={"refused": True},
        ),
        finished(diff=""),
    ]
    md = feed(RunSummary(), events).markdown()
    notes = md.split("### Notes", 1)[1]
    assert "Refused by the approval policy: `run: rm -rf build` — This is a non-interactive run" in notes
    assert "`execute_bash: git push -f` — `git push -f` is never allowed" in notes
    assert "Refused by the user: `git_commit` — not yet" in notes
    assert "Refused: `str_replace_editor" in notes and "no checkpoint" in notes
    assert notes.count("Refused") == 4
    assert_well_formed(md)


def test_checkpoints_and_branch_from_run_finished():
    events = [
        started(),
        finished(run_id="20250101-000000-abcdef", checkpoints=3, branch="luban/fix-add", commit="a" * 40),
    ]
    md = feed(RunSummary(), events).markdown()
    assert "3 checkpoints; undo with `luban undo --run 20250101-000000-abcdef`" in md
    assert "Branch `luban/fix-add` · commit `aaaaaaaaaaaa`" in md


def test_a_bad_event_never_breaks_the_summary():
    summary = RunSummary()
    summary(started())
    summary(ev.ToolCallFinished(step=1, call_id="x", name="run_tests", output="", data={"passed": "many"}))
    summary(object())  # not an event at all
    md = summary.markdown()
    assert md.startswith("## Fix add()")
    assert_well_formed(md)


def test_title_uses_the_first_non_empty_line_without_heading_marks():
    md = feed(RunSummary(), [started(task="\n\n# Crash on empty input | urgent\nbody")]).markdown()
    assert md.startswith("## Crash on empty input | urgent\n")
